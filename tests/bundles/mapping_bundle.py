"""Dynamic task mapping at run time, under the released supervisor and in bundle-run
(tests/test_mapping_runtime.py, tests/test_bundle_run_mapping.py). Every mapped task returns what
it received, so a test compares the element with Airflow's own resolution."""

from datetime import timedelta

from bundle import Bundle, Context
from bundle.triggers import TimeDeltaTrigger

bundle = Bundle("mapping", version="1.0")
dag = bundle.dag("map_dag")


@dag.task
def numbers() -> list:
    return [1, 2, 3, 4, 5]


@dag.task(map_index_template="n={x}")
def double(x: int, factor: int, ctx: Context) -> int:
    assert ctx.ti.map_index >= 0
    return x * factor


@dag.task
def total(values: list) -> dict:
    """A reduce: all of double's results, lazily."""
    return {
        "sum": sum(values),
        "len": len(values),
        "first": values[0],
        "again": values[0],
        "all": list(values),
    }


@dag.task(map_index_template="{letter}{number}")
def combine(letter: str, number: int, pair) -> dict:
    """A literal cross product: letter x number x pair (a dict maps to its (key, value) items)."""
    return {"letter": letter, "number": number, "pair": pair}


@dag.task
def config() -> dict:
    return {"eu": 3, "us": 1}


@dag.task(map_index_template="{region[0]}")
def regions(region) -> dict:
    """Maps over an unmapped upstream's dict: (key, value) items."""
    return {"region": region}


@dag.task
def kwargs_source() -> list:
    return [{"name": "r", "size": 2}, {"name": "s"}]


@dag.task(map_index_template="{name}")
def sized(name: str, size: int = 0) -> dict:
    """expand_kwargs over an upstream's list of dicts."""
    return {"name": name, "size": size}


@dag.task
def literal_kwargs(name: str, size: int = 0) -> dict:
    return {"name": name, "size": size}


@dag.task
def plus_one(value: int) -> dict:
    """Maps over a mapped upstream's results (double)."""
    return {"value": value}


@dag.task(map_index_template="code {code}", retries=1)
def flaky(code: int) -> None:
    """Fails: the label must survive RetryTask / TaskState."""
    raise ValueError(f"code {code} failed")


@dag.task(map_index_template="{nope}")
def bad_label(x: int) -> int:
    return x


@dag.task
def nothing() -> list:
    return []


@dag.task
def never(item) -> None:
    raise AssertionError("a zero-length expansion must not run")


@dag.task
def scalar() -> int:
    return 7


@dag.task
def over_scalar(item) -> None: ...


@dag.task(map_index_template="wait {seconds}")
def waits(ctx: Context, seconds: int) -> None:
    """Defers; the label must survive DeferTask and the resumed run's terminal message."""
    ctx.defer(
        trigger=TimeDeltaTrigger(timedelta(seconds=seconds)), method_name="resumed", kwargs={"s": seconds}
    )


@waits.resume
def resumed(event: object, s: int) -> int:
    return s


with dag:
    doubled = double.partial(factor=2).expand(x=numbers())
    total(doubled)
    combine.expand(letter=["a", "b"], number=[1, 2, 3], pair={"k": "v", "w": "z"})
    regions.expand(region=config())
    sized.expand_kwargs(kwargs_source())
    literal_kwargs.expand_kwargs([{"name": "p", "size": 1}, {"name": "q"}])
    plus_one.expand(value=doubled)
    never.expand(item=nothing())
    over_scalar.expand(item=scalar())
    flaky.expand(code=[7, 8])
    bad_label.expand(x=[1])
    waits.expand(seconds=[5, 6])
