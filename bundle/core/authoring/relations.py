"""``a >> b``, ``a << b``, ``[a, b] >> c``: Airflow's dependency operators, for tasks and groups alike.

Each node says what linking means for it (``set_downstream`` / ``set_upstream``: a task links
itself, a group its roots or leaves and records the link); the operators are the same for both, as
Airflow's ``DependencyMixin`` makes them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any


class Relatable:
    """The operators, over the node's own ``set_downstream`` / ``set_upstream``."""

    def set_downstream(self, other: Any) -> None:
        raise NotImplementedError

    def set_upstream(self, other: Any) -> None:
        raise NotImplementedError

    def __rshift__(self, other: Any) -> Any:
        self.set_downstream(other)
        return other

    def __lshift__(self, other: Any) -> Any:
        self.set_upstream(other)
        return other

    def __rrshift__(self, other: Any) -> Relatable:  # [a, b] >> self
        self.set_upstream(other)
        return self

    def __rlshift__(self, other: Any) -> Relatable:  # [a, b] << self
        self.set_downstream(other)
        return self
