"""The Airflow Python-SDK twin of tests/e2e/bundles/mapping.py: same task ids, mappings and values.

Its labels are Jinja (Airflow's ``map_index_template``) rendering the strings the bundle's
``str.format`` templates render."""

from __future__ import annotations

from airflow.sdk import DAG, task

with DAG(dag_id="python_mapping_dag", schedule=None):

    @task
    def numbers() -> list:
        return [1, 2, 3, 4, 5]

    @task(map_index_template="x={{ task.op_kwargs['x'] }}")
    def square(x: int) -> int:
        return x * x

    @task
    def total(values: list) -> int:
        return sum(values)

    @task(map_index_template="{{ task.op_kwargs['y'] }}*{{ task.op_kwargs['factor'] }}")
    def scale(y: int, factor: int) -> int:
        return y * factor

    @task(map_index_template="{{ task.op_kwargs['letter'] }}{{ task.op_kwargs['number'] }}")
    def combine(letter: str, number: int) -> str:
        return f"{letter}{number}"

    @task(map_index_template="{{ task.op_kwargs['name'] }}")
    def greet(name: str, punctuation: str = ".") -> str:
        return f"hello {name}{punctuation}"

    @task
    def nothing() -> list:
        return []

    @task
    def never(x: int) -> int:
        return x

    squares = square.expand(x=numbers())
    total(squares)
    scale.partial(factor=10).expand(y=squares)
    combine.expand(letter=["a", "b"], number=[1, 2, 3])
    greet.expand_kwargs([{"name": "ann", "punctuation": "!"}, {"name": "bob"}])
    never.expand(x=nothing())
