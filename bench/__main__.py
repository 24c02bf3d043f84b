"""``python -m bench [--quick] [--json] [--only N ...]``: run the figures and print the table."""

from __future__ import annotations

import argparse
import json
import platform
import sys

from . import figures
from .bound_arguments import bound_arguments
from .deployment_cost import deployment_cost
from .mapped_width import mapped_width
from .run_setup import run_setup


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="few runs and small sizes: a smoke test, no thresholds"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--only", nargs="*", type=int, help="figure numbers to run")
    args = parser.parse_args()
    runs = 3 if args.quick else 15
    plan = {
        1: lambda: figures.coordinator_cold_start(runs),
        2: lambda: figures.versus_airflow_task_runner(max(2, runs // 3)),
        3: lambda: figures.request_round_trips(runs if args.quick else 11, 100 if args.quick else 2500),
        4: lambda: figures.dag_parsing(
            [10, 50] if args.quick else [10, 100, 1000], 20, 1 if args.quick else 3
        ),
        5: lambda: figures.plugin_start(runs, 5 if args.quick else 50),
        6: lambda: figures.packer(2 if args.quick else 5),
        7: lambda: figures.peak_rss(2 if args.quick else 5),
        8: lambda: bound_arguments(runs if args.quick else 41),
        9: lambda: deployment_cost(20, 3),
        10: lambda: mapped_width(runs),
        11: lambda: figures.callback_cost(runs, 5 if args.quick else 20),
        12: lambda: run_setup((1000, 10000), 1 if args.quick else 3),
    }
    rows: list[figures.Row] = []
    # Light figures first, the ones that load the machine for seconds on end (2, 4) last: on a
    # shared VM a sustained load slows every wake-up for a while after it, and figure 3 is made of
    # wake-ups (measured: its floor's round trip went from ~75 us to 140-450 us after figure 2).
    # 9 starts a real Airflow deployment (minutes): full runs and --only 9, never --quick.
    for number in (3, 8, 10, 11, 1, 5, 7, 6, 12, 2, 4, 9):  # 8 and 10, like 3, are made of round trips
        if args.only and number not in args.only:
            continue
        if number == 9 and args.quick:
            continue
        rows.extend(plan[number]())
    rows.sort(key=lambda row: int(row.figure.split(" ", 1)[0]))
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "system": platform.platform(),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "machine": machine,
                    "quick": args.quick,
                    "rows": [{**vars(r), "meets_target": r.meets_target} for r in rows],
                },
                indent=2,
            )
        )
    else:
        print(
            f"# {machine['system']}, Python {machine['python']}{' (quick run: no thresholds)' if args.quick else ''}"
        )
        print("| figure | subject | value | baseline | baseline value | ratio | target | met |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            met = "" if args.quick or r.meets_target is None else ("yes" if r.meets_target else "NO")
            base = f"{r.baseline_value:.2f} {r.unit}" if r.baseline_value is not None else ""
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
            print(
                f"| {r.figure} | {r.subject} | {r.value:.2f} {r.unit} | {r.baseline or ''} | {base} | {ratio} | {r.target or ''} | {met} |"
            )
            if r.extra:
                print(f"|  |  | {json.dumps(r.extra)} |  |  |  |  |  |")
    failed = [
        r
        for r in rows
        if not args.quick and (r.meets_target is False or (r.extra or {}).get("meets") is False)
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
