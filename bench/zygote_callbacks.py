"""Figure 11, go-plugin mode: task callbacks forked from the zygote (``bundle.core.zygote``).

Run as a script: loads bench_bundle.py, starts the zygote as ``bundle.plugin.run`` does, then runs
the ``with_callbacks`` task's success callbacks with a client whose transport answers in memory
(standing in for the Execution API) and prints, as JSON, the seconds between consecutive reads:
a whole callback (the spec pickled, the zygote's fork, Landlock, one read through the proxy,
exit) as the plugin pays it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path


def main() -> int:
    spec = importlib.util.spec_from_file_location("bench_bundle", Path(__file__).with_name("bench_bundle.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_bundle"] = module
    spec.loader.exec_module(module)
    from bundle.core import zygote

    if zygote.start(module.bundle) is None:
        print(json.dumps({"error": "no zygote on this platform"}))
        return 1
    from bundle.core.callbacks import run_callbacks
    from bundle.core.client import MessageClient
    from bundle.core.context import Context, DagRunInfo, TaskInstanceInfo
    from bundle.core.provider import registry_of

    reads: list[float] = []

    def transport(body: dict) -> dict:
        reads.append(time.perf_counter())
        return {"type": "VariableResult", "key": body.get("key"), "value": "v"}

    ti = TaskInstanceInfo("bench_dag", "run", "with_callbacks")
    context = Context(ti, DagRunInfo("bench_dag", "run"))
    task = registry_of(module.bundle).lookup_task("bench_dag", "with_callbacks")
    ran = run_callbacks(task, "on_success_callback", context, MessageClient(transport, ti))
    if ran < 2 or len(reads) != ran:
        print(json.dumps({"error": f"{len(reads)} reads of {ran} callbacks"}))
        return 1
    print(json.dumps({"interval": (reads[-1] - reads[0]) / (ran - 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
