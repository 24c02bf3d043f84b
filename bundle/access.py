"""Access levels: which requests to Airflow each kind of pybundle process may send.

The public face of the catalogue in ``bundle.core.messages``. Every request type the 1.3.2 task
supervisor accepts (its ``ToSupervisor`` union) belongs to exactly one *group* (``Access``: read,
write, logging, task lifecycle, task metadata, orchestration, HITL; the grouping proposed on the
Airflow dev list), and each *workload* is the set of requests one kind of process may send:

* ``TASK``: everything the task protocol allows (all groups);
* ``CALLBACK``: read and logging only (a task's ``on_*_callback``: user code outside the task's
  lifecycle, so no writes, no state changes, no DAG runs), enforced by a proxy in the runtime
  that the callback's own process cannot get around (``bundle.core.confinement``);
* ``DAG_PARSE``: exactly what the 1.3.2 DAG processor answers (``ToManager``);
* ``DAG_CALLBACK``: ``MaskSecret`` only (a DAG's ``on_success/on_failure_callback``, run by the
  bundle started from the DAG processor, which has no channel to Airflow at all).

A request outside the workload raises ``bundle.RequestNotAllowed`` (``request_type``, ``group``,
``workload``) before anything is sent; docs/access-levels.md says where each is enforced. ``markdown_table()`` renders the table of
docs/access-levels.md, which a test keeps identical to this module.

Not imported by the runtime: it only re-exports and renders.
"""

from __future__ import annotations

from .core.messages import (
    CALLBACK_ACCESS,
    DAG_CALLBACK_ACCESS,
    DAG_PARSING_ACCESS,
    GROUP_NAMES,
    REQUEST_GROUPS,
    TASK_ACCESS,
    Access,
    Workload,
)

TASK: Workload = TASK_ACCESS
CALLBACK: Workload = CALLBACK_ACCESS
DAG_PARSE: Workload = DAG_PARSING_ACCESS
DAG_CALLBACK: Workload = DAG_CALLBACK_ACCESS
WORKLOADS: tuple[Workload, ...] = (TASK, CALLBACK, DAG_PARSE, DAG_CALLBACK)

# The groups in the order the docs list them.
GROUP_ORDER: tuple[Access, ...] = (
    Access.READ,
    Access.WRITE,
    Access.LOGGING,
    Access.LIFECYCLE,
    Access.TASK_METADATA,
    Access.ORCHESTRATION,
    Access.HITL,
)

__all__ = [
    "CALLBACK",
    "DAG_CALLBACK",
    "DAG_PARSE",
    "GROUP_NAMES",
    "GROUP_ORDER",
    "REQUEST_GROUPS",
    "TASK",
    "WORKLOADS",
    "Access",
    "Workload",
    "group_of",
    "markdown_table",
]


def group_of(request_type: str) -> str:
    """The group name of a ``ToSupervisor`` request type (``KeyError`` for an unknown one)."""
    return GROUP_NAMES[REQUEST_GROUPS[request_type]]


def markdown_table() -> str:
    """One row per request type, grouped: its group and which workloads may send it."""
    lines = [
        "| group | request type | task | callback | DAG parse | DAG callback |",
        "|---|---|---|---|---|---|",
    ]
    for group in GROUP_ORDER:
        for type_ in sorted(t for t, g in REQUEST_GROUPS.items() if g is group):
            marks = " | ".join("yes" if type_ in workload else "no" for workload in WORKLOADS)
            lines.append(f"| {GROUP_NAMES[group]} | `{type_}` | {marks} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m bundle.access: print the table for docs/access-levels.md
    print(markdown_table(), end="")
