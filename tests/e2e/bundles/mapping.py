"""A bundle that maps tasks (tests/e2e/test_mapping.py); tests/e2e/dags/python_mapping.py is the same
DAG written with Airflow's Python SDK (``@task`` with the same ``partial`` / ``expand`` /
``expand_kwargs`` calls), so one deployment runs both and their task instances are compared.

* ``square`` maps over ``numbers``' list of 5; ``total`` sums its results (a reduce: 55);
  ``scale`` maps over ``square``'s results (a mapped upstream) with a partial constant.
* ``combine`` maps over a literal cross product (2 x 3 instances, the last argument fastest).
* ``greet`` maps with ``expand_kwargs`` over a literal list of keyword dicts.
* ``never`` maps over ``nothing``'s empty list: no instance, the task ends skipped.

The labels (``map_index_template``) are ``str.format`` over the arguments; the twin's Jinja
templates render the same strings.
"""

from __future__ import annotations

from bundle import Bundle, serve

bundle = Bundle("mapping", version="1.0.0", queue="python-bundle")
dag = bundle.dag("mapping_dag", schedule=None)


@dag.task
def numbers() -> list:
    return [1, 2, 3, 4, 5]


@dag.task(map_index_template="x={x}")
def square(x: int) -> int:
    return x * x


@dag.task
def total(values: list) -> int:
    return sum(values)


@dag.task(map_index_template="{y}*{factor}")
def scale(y: int, factor: int) -> int:
    return y * factor


@dag.task(map_index_template="{letter}{number}")
def combine(letter: str, number: int) -> str:
    return f"{letter}{number}"


@dag.task(map_index_template="{name}")
def greet(name: str, punctuation: str = ".") -> str:
    return f"hello {name}{punctuation}"


@dag.task
def nothing() -> list:
    return []


@dag.task
def never(x: int) -> int:
    return x


with dag:
    squares = square.expand(x=numbers())
    total(squares)
    scale.partial(factor=10).expand(y=squares)
    combine.expand(letter=["a", "b"], number=[1, 2, 3])
    greet.expand_kwargs([{"name": "ann", "punctuation": "!"}, {"name": "bob"}])
    never.expand(x=nothing())

if __name__ == "__main__":
    raise SystemExit(serve(bundle))
