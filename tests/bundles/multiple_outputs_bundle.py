"""multiple_outputs inferred from return annotations, run under the released supervisor
(tests/test_multiple_outputs.py). Annotations are strings here, as in most bundles."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, TypedDict

from bundle import Bundle

bundle = Bundle("multiple_outputs", version="1.0")
dag = bundle.dag("mo_dag", default_args={"multiple_outputs": True})

RESULT = {"rows": [1, 2], "total": 3}


class Summary(TypedDict):
    rows: list
    total: int


@dag.task
def plain_dict() -> dict:
    return dict(RESULT)


@dag.task
def typed() -> Summary:
    return Summary(rows=[1, 2], total=3)


@dag.task
def ordered() -> OrderedDict[str, Any]:
    return OrderedDict(RESULT)


@dag.task(multiple_outputs=False)
def explicit_false() -> dict[str, Any]:
    return dict(RESULT)


@dag.task
def anything() -> Any:  # default_args' multiple_outputs=True does not reach a @task: Airflow ignores it
    return dict(RESULT)


@dag.task
def not_a_dict() -> dict:
    return [1, 2]  # type: ignore[return-value]
