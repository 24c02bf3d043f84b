"""The bundle the coordinator benchmarks run: its tasks do nothing but talk to the supervisor."""

import os

from bundle import Bundle, Client

bundle = Bundle("bench", version="1")
dag = bundle.dag("bench_dag")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
CALLBACKS = int(os.environ.get("BENCH_CALLBACKS", "1"))


@dag.task
def noop() -> None:
    """Figure 5: an Execute whose task costs nothing."""


@dag.task
def first_request(client: Client) -> None:
    client.get_variable("k")


@dag.task
def round_trips(client: Client) -> None:
    """Figure 3: ROUNDS x (GetVariable, SetXCom), the floor runtime's requests through the Client."""
    for i in range(ROUNDS):
        client.get_variable("bench")
        client.push_xcom("bench", i)


def _callback(client: Client) -> None:
    """Figure 11: one callback, one read (its own process, the runtime's proxy, the stub)."""
    client.get_variable("bench_callback")


@dag.task(on_success_callback=[_callback] * CALLBACKS)
def with_callbacks() -> None:
    """Figure 11: a task whose success runs CALLBACKS callbacks."""
