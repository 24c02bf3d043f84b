"""pybundle's benchmark suite: every start-up and per-request cost beside its floor and alternative.

Run ``python -m bench`` (``--quick`` for a smoke run, ``--json`` for machine-readable output).
"""
