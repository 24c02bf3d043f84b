"""Sensors for tests/test_sensors.py, run under the released supervisor (each task a fresh process)."""

from __future__ import annotations

from bundle import Bundle, PokeReturnValue, serve

bundle = Bundle("sensor_tests", version="1.0.0")
dag = bundle.dag("sensors", schedule=None)
_pokes: list[int] = []


@dag.sensor(poke_interval=0.2, timeout=30)
def third_poke() -> PokeReturnValue:
    """Done on its third poke, in one process (poke mode sleeps between pokes)."""
    _pokes.append(1)
    return PokeReturnValue(len(_pokes) >= 3, {"pokes": len(_pokes)})


@dag.sensor(poke_interval=0.2, timeout=0.5, retries=2)
def poke_timeout() -> bool:
    return False


@dag.sensor(poke_interval=0.2, timeout=0.5, soft_fail=True)
def poke_soft() -> bool:
    return False


@dag.sensor(mode="reschedule", poke_interval=30, timeout=3600, retries=1)
def resched() -> bool:
    return False


@dag.sensor(mode="reschedule", poke_interval=5, timeout=60, retries=1)
def resched_timeout() -> bool:
    return False


@dag.sensor(mode="reschedule", poke_interval=5, timeout=60, soft_fail=True)
def resched_soft() -> bool:
    return False


@dag.sensor(mode="reschedule", poke_interval=5)
def resched_done() -> PokeReturnValue:
    return PokeReturnValue(True, xcom_value="ok")


if __name__ == "__main__":
    raise SystemExit(serve(bundle))
