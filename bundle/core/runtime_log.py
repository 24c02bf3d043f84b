"""The runtime's own logger, ``bundle.runtime``: what pybundle itself says in a task log.

A function, not a module-level logger: ``logging`` is imported on first use, so a task that never
logs never loads it (and the ``traceback``/``tokenize``/``textwrap`` it drags in), which is a good
part of a coordinator's start-up; see ``bundle.coordinator.log_hook``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    import logging

RUNTIME_LOGGER = "bundle.runtime"


def runtime_log() -> logging.Logger:
    import logging

    return logging.getLogger(RUNTIME_LOGGER)
