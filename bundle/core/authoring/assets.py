"""``Asset`` and asset expressions: what a task produces (``outlets``), reads (``inlets``) and what
schedules a DAG (``schedule=Asset(...)``, a list, ``a & b``, ``a | b``).

The definitions follow ``airflow.sdk.definitions.asset`` of task-sdk 1.3.2, rule for rule, so a DAG
written with pybundle declares the same assets as the equivalent Python DAG and the scheduler
registers them under the same keys:

* ``Asset(name=None, uri=None, group="asset", extra=None)``: one of name / uri is required, the
  other defaults to it; the URI is sanitized as Airflow sanitizes it (scheme lower-cased, user info
  dropped with a warning when it has a password, query sorted, trailing slashes and fragment
  removed; the ``airflow`` scheme is reserved, ``x-`` schemes and plain names are kept as written).
* name, uri and group are strings of at most 1500 characters that are not only whitespace; name and
  uri are not empty; ``self`` and ``context`` are not names. A violation is Airflow's
  ``ValueError`` with Airflow's message (``Asset name cannot be empty``).
* ``a | b`` is ``AssetAny(a, b)``, ``a & b`` is ``AssetAll(a, b)``; chaining the same operator
  flattens (``a | b | c`` is one ``AssetAny`` of three), as in Airflow. A list schedule is an
  ``AssetAll`` of its items.

Not modelled (refused where they would be given): asset aliases, ``Asset.ref``, watchers, access
control, and providers' scheme-specific URI normalisers (only ``file`` and schemes without a
provider handler behave exactly as in Airflow; the deployment's providers may normalise others,
e.g. ``s3``, further). Only DAGs or tasks that use assets import this module.
"""

from __future__ import annotations

import urllib.parse
import warnings

from .jsonvalue import is_json

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Iterator
    from typing import Any

MAX_IDENTIFIER_LENGTH = 1500  # Airflow's limit for an asset's name, uri and group
_PROHIBITED_NAMES = frozenset({"self", "context"})


class BaseAsset:
    """What ``DAG(schedule=...)`` takes: an asset or a boolean expression of assets."""

    __slots__ = ()

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(self, other)

    def __and__(self, other: Any) -> Any:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(self, other)

    def iter_assets(self) -> Iterator[Asset]:
        """Every ``Asset`` in the expression, depth first, duplicates included (as core walks it for
        ``dag_dependencies``)."""
        raise NotImplementedError


def _check_identifier(owner: str, attribute: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{owner} {attribute} must be a string")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"{owner} {attribute} cannot exceed {MAX_IDENTIFIER_LENGTH} characters")
    if value.isspace():
        raise ValueError(f"{owner} {attribute} cannot be just whitespace")
    return value


def _check_non_empty(owner: str, attribute: str, value: Any) -> str:
    if not _check_identifier(owner, attribute, value):
        raise ValueError(f"{owner} {attribute} cannot be empty")
    return value


def sanitize_uri(uri: str) -> str:
    """Airflow's ``_sanitize_uri`` without providers' scheme handlers (see the module docstring)."""
    parsed = urllib.parse.urlsplit(uri)
    if not parsed.scheme and not parsed.netloc:  # a plain name, not a URI
        return uri
    scheme = parsed.scheme.lower()
    if not scheme or scheme.startswith("x-"):
        return uri
    if scheme == "airflow":
        raise ValueError("Asset scheme 'airflow' is reserved")
    netloc = parsed.netloc
    if parsed.password:
        warnings.warn(
            "An Asset URI should not contain a password. User info has been automatically dropped.",
            UserWarning,
            stacklevel=4,
        )
        netloc = netloc.rpartition("@")[2]
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parsed.query))) if parsed.query else ""
    cleaned = parsed._replace(
        scheme=scheme, netloc=netloc, path=parsed.path.rstrip("/") or "/", query=query, fragment=""
    )
    return urllib.parse.urlunsplit(cleaned)


class Asset(BaseAsset):
    """A data asset (Airflow's ``Asset``): ``Asset("orders")``, ``Asset(uri="s3://b/orders")``,
    ``Asset("orders", "s3://b/orders", group="sales", extra={"owner": "ops"})``.

    Equal assets have the same name, uri, group and extra; asset events are keyed by (name, uri)."""

    __slots__ = ("extra", "group", "name", "uri")
    name: str
    uri: str
    group: str
    extra: dict[str, Any]

    def __init__(
        self,
        name: str | None = None,
        uri: str | None = None,
        *,
        group: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if name is None and uri is None:
            raise TypeError("Asset() requires either 'name' or 'uri'")
        if name is None:
            name = str(uri)
        elif uri is None:
            uri = name
        _check_non_empty("Asset", "name", name)
        if name in _PROHIBITED_NAMES:
            raise ValueError(f"prohibited name for asset: {name}")
        uri = _check_non_empty("Asset", "uri", sanitize_uri(str(uri)))
        group = _check_identifier("Asset", "group", "asset" if group is None else group)
        extra = {} if extra is None else extra
        if not isinstance(extra, dict) or not is_json(extra):
            raise ValueError(f"Asset extra must be a dict of JSON values, got {extra!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "extra", extra)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Asset is immutable: cannot set {name!r}")

    def __repr__(self) -> str:
        return f"Asset(name={self.name!r}, uri={self.uri!r}, group={self.group!r}, extra={self.extra!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Asset):
            return NotImplemented
        return (self.name, self.uri, self.group, self.extra) == (
            other.name,
            other.uri,
            other.group,
            other.extra,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.uri, self.group))

    def __fspath__(self) -> str:
        return self.uri

    @property
    def key(self) -> tuple[str, str]:
        """``(name, uri)``: what identifies the asset to Airflow (its ``AssetUniqueKey``)."""
        return (self.name, self.uri)

    def iter_assets(self) -> Iterator[Asset]:
        yield self


class _Condition(BaseAsset):
    """``AssetAll`` / ``AssetAny``: a boolean combination of assets or expressions."""

    __slots__ = ("objects",)
    kind = ""

    def __init__(self, *objects: BaseAsset) -> None:
        if not all(isinstance(item, BaseAsset) for item in objects):
            raise TypeError("expect asset expressions in condition")
        self.objects: tuple[BaseAsset, ...] = objects

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.objects == other.objects

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.objects))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.objects))})"

    def iter_assets(self) -> Iterator[Asset]:
        for item in self.objects:
            yield from item.iter_assets()


class AssetAny(_Condition):
    """Any of the assets (``a | b``): a run starts when one of them has a new event."""

    __slots__ = ()
    kind = "asset_any"

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(*self.objects, other)  # a | b | c is one AssetAny, as in Airflow


class AssetAll(_Condition):
    """All of the assets (``a & b``, or a list): a run starts once each has a new event."""

    __slots__ = ()
    kind = "asset_all"

    def __and__(self, other: Any) -> Any:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(*self.objects, other)


# -- options ----------------------------------------------------------------------------------------


def normalise_assets(value: Any) -> list[Asset]:
    """A task's ``outlets`` / ``inlets``: an ``Asset`` or a collection of them (Airflow's
    ``_collect_from_input``: ``None`` is empty, a single object is wrapped in a list). Other lineage
    objects are refused: nothing would carry them."""
    if not value:
        return []
    items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    for item in items:
        if not isinstance(item, Asset):
            raise TypeError(f"expected Asset objects (bundle.Asset), got {type(item).__name__} {item!r}")
    return items


def normalise_asset_schedule(value: Any) -> BaseAsset:
    """``schedule=`` given an asset, an expression, or a list of them (an ``AssetAll``)."""
    if isinstance(value, BaseAsset):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        if not all(isinstance(item, BaseAsset) for item in value):
            raise ValueError("All elements in 'schedule' should be either assets or asset expressions")
        return AssetAll(*value)
    raise TypeError(
        "expected None, a cron string, a preset, a timedelta, an Asset, an asset expression or a list "
        f"of assets, got {type(value).__name__}"
    )


# -- DagSerialization (core 3.3.2's encode_asset_like) ----------------------------------------------


def encode_asset(asset: Asset) -> dict[str, Any]:
    """An asset in a task's ``outlets`` / ``inlets`` or in ``default_args``."""
    return {"__type": "asset", "__var": _asset_fields(asset)}


def _asset_fields(asset: Asset) -> dict[str, Any]:
    return {"name": asset.name, "uri": asset.uri, "group": asset.group, "extra": dict(asset.extra)}


def encode_condition(condition: BaseAsset) -> dict[str, Any]:
    """An ``AssetTriggeredTimetable``'s ``asset_condition``: assets flat, conditions nested."""
    if isinstance(condition, Asset):
        return {"__type": "asset", **_asset_fields(condition)}
    if isinstance(condition, _Condition):
        return {"__type": condition.kind, "objects": [encode_condition(item) for item in condition.objects]}
    raise TypeError(f"cannot serialize {type(condition).__name__} {condition!r} as an asset condition")


def asset_timetable(condition: BaseAsset) -> dict[str, Any]:
    return {
        "__type": "airflow.timetables.simple.AssetTriggeredTimetable",
        "__var": {"asset_condition": encode_condition(condition)},
    }


def dependency(asset: Asset, *, source: str, target: str) -> dict[str, str]:
    """One ``dag_dependencies`` entry (core's ``DagDependency``): a task producing the asset
    (source = the DAG, target "asset") or the DAG scheduled on it (source "asset")."""
    import json

    return {
        "source": source,
        "target": target,
        "label": asset.name,
        "dependency_type": "asset",
        "dependency_id": json.dumps({"name": asset.name, "uri": asset.uri}),
    }


def dag_dependencies(dag_id: str, outlets: list[list[Asset]], schedule: Any) -> list[dict[str, str]]:
    """The DAG's ``dag_dependencies`` as core writes them: each task's outlets once per (name, uri)
    (core collects a task's dependencies in a set), every asset of the schedule (duplicates kept),
    sorted by source, target, label, type and id. ``outlets``: the outlets of each task."""
    found = [
        dependency(Asset(name, uri), source=dag_id, target="asset")
        for task_outlets in outlets
        for name, uri in {asset.key: None for asset in task_outlets}
    ]
    if isinstance(schedule, BaseAsset):
        found += [dependency(asset, source="asset", target=dag_id) for asset in schedule.iter_assets()]
    order = ("source", "target", "label", "dependency_type", "dependency_id")
    return sorted(found, key=lambda dep: tuple(dep[key] for key in order))
