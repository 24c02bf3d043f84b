"""Data passing and params under the released supervisor (tests/test_data_passing.py)."""

from bundle import Bundle, Context, Param

bundle = Bundle("data_passing", version="1.0")
dag = bundle.dag("dp_dag", params={"n": Param(3, type="integer", minimum=1, maximum=10), "label": "x"})


@dag.task(multiple_outputs=True)
def extract() -> dict:
    return {"rows": [1, 2]}


@dag.task(multiple_outputs=False)  # explicit: `-> dict` alone infers multiple_outputs, as in Airflow
def keyed() -> dict:
    return {"k": 1}


@dag.task
def load(rows: list, whole, limit: int, ctx: Context, missing=None) -> dict:
    return {"rows": rows, "whole": whole, "limit": limit, "params": ctx.params}


@dag.task
def needs_key(value) -> None: ...


with dag:
    load(extract.output["rows"], extract(), limit=5)
    needs_key(keyed.output["absent"])
