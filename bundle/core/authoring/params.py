"""``Param``: a DAG param with Airflow's semantics, and how a run's ``dag_run.conf`` meets them.

``bundle.dag(..., params={"n": Param(5, type="integer", minimum=1), "label": "x"})``: a plain value
is a ``Param`` without a schema, as in Airflow. Defaults must be JSON; the schema is a JSON-schema
subset (``bundle.core.authoring.param_schema``). A scheduled DAG's params must all resolve from
their defaults (Airflow refuses the DAG otherwise). At run time ``resolve_params`` is Airflow's
``process_params``: the params, updated with the run's conf (each conf value for a declared param
validated; undeclared keys added as they are), then every param validated; an invalid value fails
the task with ``Invalid input for param <name>: <message>``.
"""

from __future__ import annotations

from ..errors import RegistrationError
from . import param_schema
from .jsonvalue import is_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Mapping
    from typing import Any


class _NotSet:
    """The default of a ``Param`` that has none (Airflow's ``NOTSET``): the run's conf must give it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTSET"

    def __reduce__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


class ParamValidationError(ValueError):
    """A param value its schema rejects, or a required param without a value (Airflow's name)."""


class Param:
    """Airflow's ``Param``: ``Param(default, description=None, **schema)`` or ``schema={...}``.

    Pure pybundle (no Airflow import); serialized exactly as ``airflow.sdk.definitions.param.Param``,
    so the UI's trigger form shows it."""

    __slots__ = ("default", "description", "schema")

    def __init__(self, default: Any = NOTSET, description: str | None = None, **schema: Any):
        self.default = default
        self.description = description
        self.schema: dict[str, Any] = dict(schema.pop("schema")) if "schema" in schema else schema

    def __repr__(self) -> str:
        return f"Param({self.default!r}, description={self.description!r}, schema={self.schema!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Param):
            return NotImplemented
        return (self.default, self.description, self.schema) == (
            other.default,
            other.description,
            other.schema,
        )

    __hash__ = None  # type: ignore[assignment]

    def resolve(self, value: Any = NOTSET) -> Any:
        """``value`` (or the default) when the schema accepts it; else ``ParamValidationError``."""
        final = self.default if value is NOTSET else value
        if final is NOTSET:
            raise ParamValidationError("No value passed and Param has no default value")
        problem = param_schema.validate(final, self.schema)
        if problem is not None:
            raise ParamValidationError(problem)
        return final


def normalise_params(dag_id: str, params: Any, *, schedulable: bool) -> dict[str, Param]:
    """A DAG's ``params=`` as ``{name: Param}``, checked as Airflow checks them at import."""
    where = f"dag {dag_id!r}"
    if not hasattr(params, "items"):
        raise RegistrationError(f"{where}: params must be a dict of names to Params or values")
    result: dict[str, Param] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise RegistrationError(f"{where}: param names must be non-empty strings, got {name!r}")
        param = value if isinstance(value, Param) else Param(value)
        if param.default is not NOTSET and not is_json(param.default):
            raise RegistrationError(
                f"{where}: param {name!r}: All provided parameters must be json-serializable. "
                f"The value {param.default!r} is not serializable."
            )
        if param.description is not None and not isinstance(param.description, str):
            raise RegistrationError(f"{where}: param {name!r}: description must be a str")
        problem = param_schema.schema_problem(param.schema) or (
            None if is_json(param.schema) else "has a schema that is not JSON"
        )
        if problem:
            raise RegistrationError(f"{where}: param {name!r} {problem}")
        result[name] = param
    if schedulable:
        try:
            resolve_params(result, {})
        except ParamValidationError as exc:
            raise RegistrationError(
                f"Dag {dag_id!r} is not allowed to define a Schedule, as there are required params "
                f"without default values, or the default values are not valid: {exc}"
            ) from None
    return result


def resolve_params(params: Mapping[str, Param], conf: Mapping[str, Any]) -> dict[str, Any]:
    """Airflow's ``process_params``: ``params`` updated with ``conf`` (conf wins), validated."""
    merged: dict[str, Param] = dict(params)
    values: dict[str, Any] = {}
    for name, value in conf.items():
        if name in merged:
            try:
                merged[name].resolve(value)
            except ParamValidationError as exc:
                raise ParamValidationError(f"Invalid input for param {name}: {exc}") from None
            values[name] = value
        else:
            merged[name] = Param(value)
    resolved: dict[str, Any] = {}
    for name, param in merged.items():
        try:
            resolved[name] = param.resolve(values.get(name, NOTSET))
        except ParamValidationError as exc:
            raise ParamValidationError(f"Invalid input for param {name}: {exc}") from None
    return resolved
