"""ServiceSet.stop leaves nothing behind, even a child that left its process group (like Airflow tasks).

No Airflow here: a stand-in service whose child calls ``setsid`` the way the task supervisor's
children call ``setpgid``, so ``killpg`` of the service's group alone would miss it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from tests.e2e.services import ServiceSet

ESCAPING_SERVICE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(300)
"""


def _child_pid(log: Path, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text().strip()
        if text:
            return int(text.split()[0])
        time.sleep(0.05)
    raise TimeoutError(f"the service did not start its child in {timeout} s")


def test_stop_kills_the_groups_and_children_that_escaped_them(tmp_path: Path) -> None:
    services = ServiceSet(log_dir=tmp_path, env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    service = services.start("escaper", [sys.executable, "-c", ESCAPING_SERVICE])
    child = psutil.Process(_child_pid(service.log_path))
    assert child.pid != service.pid
    assert psutil.Process(child.pid).ppid() == service.pid
    assert {p.pid for p in services.processes()} == {service.pid, child.pid}

    leftovers = services.stop(grace=5.0)

    assert leftovers == []
    assert not service.alive()
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert services.processes() == []
