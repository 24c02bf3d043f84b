"""The bundle the coordinator benchmarks run: its tasks do nothing but talk to the supervisor."""

import os

from bundle import Bundle, Client

bundle = Bundle("bench", version="1")
dag = bundle.dag("bench_dag")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))


@dag.task
def first_request(client: Client) -> None:
    client.get_variable("k")


@dag.task
def round_trips(client: Client) -> None:
    for _ in range(ROUNDS):
        client.get_variable("k")
