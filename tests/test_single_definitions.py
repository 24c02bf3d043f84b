"""Logic every task path shares is written once (issue 23 §2), so the paths cannot drift apart."""

from __future__ import annotations

import ast
from pathlib import Path

from bundle.core import callbacks, execution, options

CORE = Path(execution.__file__).parent


def _callers(name: str) -> set[str]:
    """The functions of ``bundle/core`` (``module.py:function``) that call ``name``, a plain name or
    ``module.attribute`` such as ``asyncio.run``."""
    found: set[str] = set()
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                    found.add(f"{path.relative_to(CORE)}:{func.name}")
    return found


def test_execution_timeout_is_applied_in_one_place() -> None:
    """Only ``execution.call_bounded`` decides between ``call_with_timeout`` and a plain call."""
    outside = {where for where in _callers("call_with_timeout") if not where.startswith("timeouts.py:")}
    assert outside == {"execution.py:call_bounded"}


def test_task_functions_run_in_an_event_loop_in_one_place() -> None:
    """Task, poke and resume functions reach ``asyncio.run`` only through ``execution.call_plain``
    (callbacks await a returned coroutine on their own thread; ``timeouts`` runs a bounded one)."""
    outside = {
        where
        for where in _callers("asyncio.run")
        if where.split(":")[0] not in ("timeouts.py", "callbacks.py", "confinement.py")
    }
    assert outside == {"execution.py:call_plain"}


def test_task_callback_kinds_are_defined_once() -> None:
    assert callbacks.CALLBACK_KINDS is options.CALLBACK_OPTIONS
    assert options.CALLBACK_OPTIONS == (
        "on_execute_callback",
        "on_success_callback",
        "on_failure_callback",
        "on_retry_callback",
        "on_skipped_callback",
    )
