"""Figure 10's bundle: a 1,000-wide mapped task over an unmapped upstream's list, one over a mapped
upstream's results, and a reduce of them (the stub answers the XComs; no upstream ever runs)."""

from bundle import Bundle

bundle = Bundle("bench_mapped", version="1")
dag = bundle.dag("bench_mapped_dag")
WIDTH = 1000


@dag.task
def source() -> list:
    return list(range(WIDTH))


@dag.task(map_index_template="item {x}")
def wide(x: int) -> int:
    """Maps over source's list: one GetXCom for the whole list, then indexes it."""
    return x


@dag.task
def over_mapped(x: int) -> int:
    """Maps over wide's 1,000 results: one GetXComCount and one GetXComSequenceItem."""
    return x


@dag.task
def reduce(values: list) -> int:
    """All of wide's results: one GetXComSequenceSlice."""
    return sum(values)


with dag:
    results = wide.expand(x=source())
    over_mapped.expand(x=results)
    reduce(results)
