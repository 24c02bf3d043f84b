"""Asset events at run time: what a task emits for its outlets and reads for its inlets.

Airflow creates asset events only from the ``SucceedTask`` of a task (``task_outlets`` and
``outlet_events``, spec ``airflow-semantics.md`` §7); this module builds both exactly as 1.3.2's
Python task runner does (``_build_asset_profiles`` / ``_serialize_outlet_events``):

* ``task_outlets``: ``[{"name", "uri", "type": "Asset"}]``, one per outlet of the task;
* ``outlet_events``: one ``{"dest_asset_key": {"name", "uri"}, "extra"}`` per asset the task
  touched through ``ctx.outlet_events[asset]`` (one per partition key added with
  ``add_partitions``). The API server keeps the events of the task's outlets and ignores the rest.

Before a task with inlets or outlets runs, ``ValidateInletsAndOutlets`` asks the server whether all
of them are active, and the task fails (Airflow's message) when some are not, as in Airflow.
Reading: ``ctx.inlet_events[asset]`` (one ``GetAssetEventByAsset`` on first use) and
``ctx.triggering_asset_events[asset]`` (the run's ``consumed_asset_events``, no request).

Only tasks that declare or use assets import this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .authoring.assets import Asset
from .authoring.jsonvalue import is_json
from .errors import FailTask
from .records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Iterator
    from typing import Any

    from .client import MessageClient
    from .context import Context
    from .registry import Task

PARTITION_KEY_MAX_LENGTH = 250  # Airflow's ID_LEN, the partition key column's width


class AssetEvent(Record):
    """One asset event, as Airflow's ``AssetEventResult`` / ``AssetEventDagRunReferenceResult``
    give it to Python tasks: ``event.extra``, ``event.asset.name``, ``event.source_dag_id``..."""

    asset: Asset
    extra: dict[str, Any]
    timestamp: Any = None
    source_dag_id: str | None = None
    source_task_id: str | None = None
    source_run_id: str | None = None
    source_map_index: int | None = None
    partition_key: str | None = None
    id: int | None = None
    source_aliases: tuple[str, ...] = ()


def event_from(data: Mapping[str, Any]) -> AssetEvent:
    """An ``AssetEvent`` from an ``AssetEventResponse`` or an ``AssetEventDagRunReference``."""
    asset = data.get("asset") or {}
    return AssetEvent(
        asset=Asset(
            asset.get("name"),
            asset.get("uri"),
            group=asset.get("group"),
            extra=asset.get("extra") or {},
        ),
        extra=dict(data.get("extra") or {}),
        timestamp=data.get("timestamp"),
        source_dag_id=data.get("source_dag_id"),
        source_task_id=data.get("source_task_id"),
        source_run_id=data.get("source_run_id"),
        source_map_index=data.get("source_map_index"),
        partition_key=data.get("partition_key"),
        id=data.get("id"),
        source_aliases=tuple(alias.get("name") for alias in data.get("source_aliases") or ()),
    )


def events_from_answer(answer: Mapping[str, Any] | None) -> list[AssetEvent]:
    """The events of an ``AssetEventsResult``."""
    return [event_from(item) for item in (answer or {}).get("asset_events") or ()]


def _key(asset: Any) -> tuple[str, str]:
    if not isinstance(asset, Asset):
        raise TypeError(f"Key should be an asset (bundle.Asset), not {type(asset)}")
    return asset.key


# -- outlets ----------------------------------------------------------------------------------------


class OutletEventAccessor:
    """What ``ctx.outlet_events[asset]`` is: the ``extra`` (a dict to fill) and the partition keys
    of the event the task's success emits for ``asset``."""

    __slots__ = ("extra", "key", "partition_keys")

    def __init__(self, key: tuple[str, str]):
        self.key = key
        self.extra: dict[str, Any] = {}
        self.partition_keys: set[str] = set()

    def __repr__(self) -> str:
        return f"OutletEventAccessor(key={self.key!r}, extra={self.extra!r})"

    def add_partitions(self, keys: str | list[str]) -> None:
        """One event per partition key instead of one without (Airflow's ``add_partitions``)."""
        if isinstance(keys, str):
            keys = [keys]
        for key in keys:
            if not key.strip():
                raise ValueError(f"partition_key must not be empty or whitespace-only; got {key!r}.")
            if len(key) > PARTITION_KEY_MAX_LENGTH:
                raise ValueError(
                    f"partition_key must be at most {PARTITION_KEY_MAX_LENGTH} characters; got {len(key)}."
                )
        self.partition_keys.update(keys)


class OutletEventAccessors(Mapping):
    """``ctx.outlet_events``: an accessor per asset, made on first access (as in Airflow)."""

    def __init__(self) -> None:
        self._accessors: dict[tuple[str, str], OutletEventAccessor] = {}

    def __getitem__(self, asset: Asset) -> OutletEventAccessor:
        key = _key(asset)
        accessor = self._accessors.get(key)
        if accessor is None:
            accessor = self._accessors[key] = OutletEventAccessor(key)
        return accessor

    def __iter__(self) -> Iterator[Asset]:
        return (Asset(name, uri) for name, uri in self._accessors)

    def __len__(self) -> int:
        return len(self._accessors)

    def serialize(self) -> list[dict[str, Any]]:
        """``SucceedTask.outlet_events``, in the order the task first touched each asset."""
        events: list[dict[str, Any]] = []
        for (name, uri), accessor in self._accessors.items():
            base = {"dest_asset_key": {"name": name, "uri": uri}, "extra": accessor.extra}
            if accessor.partition_keys:
                events.extend({**base, "partition_key": key} for key in sorted(accessor.partition_keys))
            else:
                events.append(base)
        return events


def task_outlets(task: Task) -> list[dict[str, Any]]:
    """``SucceedTask.task_outlets``: the task's outlets as Airflow's ``AssetProfile``s."""
    return [
        {"name": asset.name, "uri": asset.uri, "type": "Asset"}
        for asset in task.effective_options.get("outlets") or ()
    ]


# -- inlets -----------------------------------------------------------------------------------------


class InletEventsAccessor(Sequence):
    """The events of one asset, oldest first, fetched with one ``GetAssetEventByAsset`` when first
    read; ``after`` / ``before`` / ``ascending`` / ``limit`` refine the query (and refetch)."""

    def __init__(self, client: MessageClient | None, asset: Asset):
        self._client = client
        self._asset = asset
        self._query: dict[str, Any] = {"after": None, "before": None, "limit": None, "ascending": True}
        self._events: list[AssetEvent] | None = None

    def _refine(self, name: str, value: Any) -> InletEventsAccessor:
        self._query[name] = value
        self._events = None
        return self

    def after(self, after: Any) -> InletEventsAccessor:
        return self._refine("after", after)

    def before(self, before: Any) -> InletEventsAccessor:
        return self._refine("before", before)

    def ascending(self, ascending: bool = True) -> InletEventsAccessor:
        return self._refine("ascending", ascending)

    def limit(self, limit: int) -> InletEventsAccessor:
        return self._refine("limit", limit)

    @property
    def events(self) -> list[AssetEvent]:
        if self._events is None:
            if self._client is None:
                raise RuntimeError("inlet events can be read only while the task runs")
            self._events = self._client.get_asset_events(
                name=self._asset.name, uri=self._asset.uri, **self._query
            )
        return self._events

    def __getitem__(self, index: Any) -> Any:
        return self.events[index]

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[AssetEvent]:
        return iter(self.events)


class InletEventsAccessors(Mapping):
    """``ctx.inlet_events``: keyed by an inlet asset or its index in the task's ``inlets``; an
    asset that is not an inlet is a ``KeyError``, as in Airflow."""

    def __init__(self, inlets: Sequence[Asset], client: MessageClient | None):
        self._inlets = list(inlets)
        self._client = client
        self._keys = {asset.key for asset in self._inlets}

    def __getitem__(self, key: Any) -> InletEventsAccessor:
        if isinstance(key, int):
            asset = self._inlets[key]
        elif _key(key) in self._keys:
            asset = key
        else:
            raise KeyError(key)
        return InletEventsAccessor(self._client, asset)

    def __iter__(self) -> Iterator[Asset]:
        return iter(self._inlets)

    def __len__(self) -> int:
        return len(self._inlets)


# -- triggering events --------------------------------------------------------------------------------


class TriggeringAssetEvents(Mapping):
    """``ctx.triggering_asset_events``: ``{asset: [AssetEvent, ...]}`` of an asset-triggered run;
    an asset without events gives ``[]``."""

    def __init__(self, consumed: Sequence[Mapping[str, Any]]):
        self._events: dict[tuple[str, str], list[AssetEvent]] = {}
        for data in consumed:
            event = event_from(data)
            self._events.setdefault(event.asset.key, []).append(event)

    def __getitem__(self, asset: Asset) -> list[AssetEvent]:
        return self._events.get(_key(asset), [])

    def __iter__(self) -> Iterator[Asset]:
        return (Asset(name, uri) for name, uri in self._events)

    def __len__(self) -> int:
        return len(self._events)


# -- the runtime's side -------------------------------------------------------------------------------


class AssetState:
    """A running task's asset accessors (``Context._assets``); ``bind`` gives them the task and the
    client before the task function is called."""

    def __init__(self, context: Context):
        self._context = context
        self.outlet_events = OutletEventAccessors()
        self._inlets: Sequence[Asset] = ()
        self._client: MessageClient | None = None
        self._triggering: TriggeringAssetEvents | None = None

    def bind(self, task: Task, client: MessageClient) -> None:
        self._inlets = task.effective_options.get("inlets") or ()
        self._client = client

    @property
    def inlet_events(self) -> InletEventsAccessors:
        return InletEventsAccessors(self._inlets, self._client)

    @property
    def triggering_asset_events(self) -> TriggeringAssetEvents:
        if self._triggering is None:
            self._triggering = TriggeringAssetEvents(self._context.dag_run.consumed_asset_events or ())
        return self._triggering


class InactiveAssets(FailTask):
    """Some inlets or outlets of the task are not active assets (Airflow's
    ``AirflowInactiveAssetInInletOrOutletException``, an ``AirflowFailException``): the task fails
    before it runs, without a retry."""


def prepare(task: Task, context: Context, client: MessageClient) -> None:
    """Before a task with inlets or outlets runs: ``ValidateInletsAndOutlets`` (Airflow's
    ``_validate_task_inlets_and_outlets``), then the accessors learn the task and the client."""
    from .context import _asset_state

    state = _asset_state(context)
    state.bind(task, client)
    ti_id = context.ti.id
    if ti_id is None:
        return
    answer = client.request({"type": "ValidateInletsAndOutlets", "ti_id": ti_id}) or {}
    if answer.get("type") == "ErrorResponse":
        from .errors import AirflowApiError

        raise AirflowApiError("ValidateInletsAndOutlets", str(answer.get("error")), answer.get("detail"))
    inactive = answer.get("inactive_assets") or []
    if inactive:
        keys = ", ".join(
            f"Asset(name={item.get('name') or item.get('uri')!r}, uri={item.get('uri') or item.get('name')!r})"
            for item in inactive
        )
        raise InactiveAssets(f"Task has the following inactive assets in its inlets or outlets: {keys}")


def terminal_fields(task: Task, context: Context) -> dict[str, list[dict[str, Any]]]:
    """``task_outlets`` and ``outlet_events`` for the success of ``task`` (empty lists for none)."""
    state = context._assets
    events = state.outlet_events.serialize() if state is not None else []
    for event in events:
        if not is_json(event["extra"]):
            key = event["dest_asset_key"]
            raise TypeError(
                f"outlet_events[Asset(name={key['name']!r}, uri={key['uri']!r})].extra must hold JSON values "
                f"(str keys; str, int, float, bool, None, lists, dicts), got {event['extra']!r}"
            )
    return {"task_outlets": task_outlets(task), "outlet_events": events}
