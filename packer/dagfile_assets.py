"""Assets in a generated DAG file: ``Asset(...)`` in ``outlets=`` / ``inlets=`` (of stubs and in
``default_args``) and asset schedules (``schedule=Asset(...)``, ``AssetAll(...)``, ``AssetAny(...)``).

The scheduler registers a DAG's assets from the file, not from the bundle: an outlet missing here
would make the task's asset events be dropped as events of an inactive asset, and a missing asset
schedule would leave the consumer DAG unscheduled. So the file writes each asset with the fields
that differ from ``Asset``'s defaults (name always; ``uri`` when it is not the name, ``group`` when
it is not ``"asset"``, ``extra`` when not empty), and an asset condition with the constructors that
rebuild exactly the serialized tree (``AssetAll(a, b)`` is what ``a & b`` and ``[a, b]`` build).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .pysource import bracketed, literal, string

ASSET_TIMETABLE = "simple.AssetTriggeredTimetable"
_CONDITIONS = {"asset_all": "AssetAll", "asset_any": "AssetAny"}


@dataclass(frozen=True, eq=True)
class AssetSource:
    """An ``Asset(...)`` expression; :func:`packer.pysource.literal` renders it in place (so it
    explodes as ruff would at the indentation it lands on)."""

    name: str
    uri: str
    group: str
    extra: Any

    def render_source(self, indent: int, prefix: int) -> str:
        items = [f"name={string(self.name)}"]
        if self.uri != self.name:
            items.append(f"uri={string(self.uri)}")
        if self.group != "asset":
            items.append(f"group={string(self.group)}")
        if self.extra:
            items.append("extra=" + literal(self.extra, indent + 1, len("extra=")))
        return "Asset" + bracketed("(", items, ")", indent, prefix_width=prefix + len("Asset"))


@dataclass(frozen=True)
class ConditionSource:
    """``AssetAll(...)`` / ``AssetAny(...)`` of assets or nested conditions."""

    kind: str
    objects: tuple[Any, ...]

    def render_source(self, indent: int, prefix: int) -> str:
        name = _CONDITIONS[self.kind]
        items = [literal(item, indent + 1) for item in self.objects]
        return name + bracketed("(", items, ")", indent, prefix_width=prefix + len(name))


def asset_of(data: Any, where: str, error: type[Exception]) -> AssetSource:
    """An asset of a task's ``outlets`` / ``inlets`` or of ``default_args`` (``{"__type":
    "asset", "__var": {...}}``) or of a timetable condition (the fields inline)."""
    fields = data.get("__var", data) if isinstance(data, dict) else None
    if not isinstance(fields, dict) or not isinstance(fields.get("name"), str):
        raise error(f"cannot write a DAG file: {where} holds {data!r}, not an asset")
    name: str = fields["name"]
    return AssetSource(name, fields.get("uri", name), fields.get("group", "asset"), fields.get("extra") or {})


def assets_of(value: Any, where: str, error: type[Exception]) -> list[AssetSource]:
    if not isinstance(value, list):
        raise error(f"cannot write a DAG file: {where} is {value!r}, not a list of assets")
    return [asset_of(item, where, error) for item in value]


def condition_of(data: Any, where: str, error: type[Exception]) -> AssetSource | ConditionSource:
    """The ``asset_condition`` of an ``AssetTriggeredTimetable``."""
    kind = data.get("__type") if isinstance(data, dict) else None
    if kind == "asset":
        return asset_of(data, where, error)
    if kind in _CONDITIONS:
        return ConditionSource(kind, tuple(condition_of(item, where, error) for item in data["objects"]))
    raise error(
        f"cannot write a DAG file: {where} holds {data!r}, which is not an asset or AssetAll/AssetAny"
    )


def imports_of(source: str) -> set[str]:
    """The ``airflow.sdk`` names a rendered expression uses."""
    return {name for name in ("Asset", "AssetAll", "AssetAny") if f"{name}(" in source}
