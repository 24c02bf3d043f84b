"""The two coordinators ``bundle-run`` routes tasks to (imported in the worker process only).

Airflow's worker picks a coordinator by the task's queue (``[sdk] queue_to_coordinator`` →
``[sdk] coordinators``); the worker configures exactly that, so ``supervise_task`` takes the
production path:

* :class:`PackedBundleCoordinator` is the released ``ExecutableCoordinator`` - it scans its
  ``executables_root`` for an ``AFBNDL01`` bundle whose manifest lists the DAG, reads the schema
  version from the manifest and launches the file.
* :class:`SourceBundleCoordinator` is a ``SubprocessCoordinator`` that launches
  ``python -m bundle --bundle TARGET``, the way a deployment without packing would configure one.

Both only add one thing: they keep the supervisor's ``ExecutionResult`` (exit code and the final
state it computed), which ``supervise_task`` logs but does not return.
"""

from __future__ import annotations

from typing import Any

import attrs
from airflow.sdk.coordinators._subprocess import SubprocessCoordinator
from airflow.sdk.coordinators.executable import ExecutableCoordinator

LAST_RESULT: dict[str, Any] = {}
"""``exit_code`` and ``final_state`` of the most recent ``execute_task`` in this process."""


class _KeepsResult:
    def execute_task(self, **kwargs: Any) -> Any:
        """The released ``execute_task``, keeping its ``ExecutionResult`` in :data:`LAST_RESULT`."""
        LAST_RESULT.clear()
        result = super().execute_task(**kwargs)  # type: ignore[misc]
        state = result.final_state
        LAST_RESULT.update(exit_code=result.exit_code, final_state=str(getattr(state, "value", state)))
        return result


@attrs.define(kw_only=True)
class PackedBundleCoordinator(_KeepsResult, ExecutableCoordinator):
    """``ExecutableCoordinator``, unchanged but for keeping the result."""


@attrs.define(kw_only=True)
class SourceBundleCoordinator(_KeepsResult, SubprocessCoordinator):
    """Run a source target: ``command`` (without ``--comm``/``--logs``) at ``schema_version``."""

    command: list[str]
    schema_version: str | None = "2026-06-16"

    def _build_execute_task_command(self, *, what: Any) -> tuple[list[str], str | None]:
        return list(self.command), self.schema_version
