"""Figure 8's bundle: three tasks alike but for their bound arguments (0, 1 and 5 XCom references).

A bundle of its own, not ``bench_bundle.py``: figure 1 times that bundle's import, and a ``with dag:``
block there would move figure 1 for a reason that is not start-up.
"""

from bundle import Bundle

bundle = Bundle("bench_bound", version="1")
dag = bundle.dag("bench_bound_dag")
KEYS = ("a", "b", "c", "d", "e")


@dag.task(multiple_outputs=True)
def source() -> dict:
    """The upstream the references point at; figure 8 never runs it (the stub answers GetXCom)."""
    return dict.fromkeys(KEYS, 1)


@dag.task
def bound_0() -> None:
    """The baseline: same DAG, same import, no bound argument, so no GetXCom."""


@dag.task
def bound_1(a: int) -> None:
    """One reference: one GetXCom and one annotation check."""


@dag.task
def bound_5(a: int, b: int, c: int, d: int, e: int) -> None:
    """Five references to five keys of a ``multiple_outputs`` upstream: five GetXCom."""


with dag:
    bound_1(source.output["a"])
    bound_5(*(source.output[key] for key in KEYS))
