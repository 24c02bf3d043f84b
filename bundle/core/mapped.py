"""Dynamic task mapping at run time: a mapped task instance's element, the reduce of a mapped
task's results, the ``mapped_length`` of an upstream mapped over, and ``map_index_template``.

Airflow's scheduler expands a mapped task into ``map_index`` 0..n-1 and the worker is told nothing
but its ``map_index`` (``StartupDetails``), so each instance finds its own element from the DAG
definition, exactly as the Python task runner does (``DictOfListsExpandInput.resolve`` /
``ListOfDictsExpandInput.resolve`` of task-sdk 1.3.2):

* ``expand(a=..., b=...)``: every argument is resolved (a literal as declared; an unmapped
  upstream's output with one ``GetXCom``; a mapped upstream's results as a ``LazyXComSequence``,
  whose length costs one ``GetXComCount``), then ``map_index`` is split over the lengths with the
  *last* argument varying fastest (``_expand_mapped_field``): a list gives its item, a dict its
  ``(key, value)`` pair in insertion order, a lazy sequence one ``GetXComSequenceItem``.
* ``expand_kwargs(...)``: the ``map_index``-th dict of the literal list, of the unmapped upstream's
  list (one ``GetXCom``) or of the mapped upstream's results (one ``GetXComSequenceItem``).

So an instance costs the same few requests whatever the width. A task downstream that takes a
mapped task's output as an ordinary argument (a *reduce*) gets a ``LazyXComSequence`` of all the
results in map-index order: ``len`` is one ``GetXComCount``, iteration one ``GetXComSequenceSlice``,
and nothing is asked twice. A task whose output some mapped task expands over pushes its
``return_value`` with ``mapped_length`` (the scheduler creates the instances from it) and fails, as
in Airflow, when that output is not a list or dict. Only tasks that map, reduce or are mapped over
load this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .authoring import binding
from .authoring.mapping import DICT_OF_LISTS
from .runtime_log import runtime_log

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from collections.abc import Iterator
    from typing import Any

    from .client import MessageClient
    from .context import Context
    from .registry import Task

_MISSING = object()


# -- Airflow's errors, word for word ----------------------------------------------------------------
class XComForMappingNotPushed(TypeError):
    """A task some mapped task expands over returned nothing (Airflow's exception of that name)."""

    def __str__(self) -> str:
        return "did not push XCom for task mapping"


class UnmappableXComTypePushed(TypeError):
    """A task some mapped task expands over returned neither a list nor a dict (Airflow's)."""

    def __str__(self) -> str:
        return f"unmappable return type {type(self.args[0]).__qualname__!r}"


# -- the reduce: a mapped task's results ---------------------------------------------------------
class LazyXComSequence(Sequence):
    """All results of a mapped upstream (one XCom key), in map-index order, fetched on demand.

    What Airflow's ``LazyXComSequence`` gives a task, with one difference: nothing is requested
    twice. ``len()`` costs one ``GetXComCount``; iterating (or ``list()``, ``sum()``...) one
    ``GetXComSequenceSlice`` for all items; ``seq[i]`` one ``GetXComSequenceItem`` unless the items
    are already here; ``seq[a:b]`` one slice. Items are the JSON values the instances pushed."""

    is_lazy_xcom_sequence = True  # the plain-type check accepts it for a ``list`` annotation

    def __init__(self, client: MessageClient, task_id: str, key: str = binding.RETURN_KEY):
        self._client = client
        self._task_id = task_id
        self._key = key
        self._len: int | None = None
        self._all: list[Any] | None = None
        self._items: dict[int, Any] = {}
        self._slices: dict[tuple[int | None, int | None, int | None], list[Any]] = {}

    def __repr__(self) -> str:  # Airflow's text
        if self._len is None and self._all is None:
            return "LazyXComSequence(<unevaluated length>)"
        length = len(self)
        return f"LazyXComSequence([{length} {'item' if length == 1 else 'items'}])"

    __str__ = __repr__

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        if self._len is None:
            self._len = self._client.get_xcom_count(self._task_id, self._key)
        return self._len

    def __iter__(self) -> Iterator[Any]:
        return iter(self._everything())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return self._everything() == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            if self._all is not None:
                return self._all[key]
            bounds = (_index(key.start), _index(key.stop), _index(key.step))
            if bounds[2] == 0:
                raise ValueError("slice step cannot be zero")
            if bounds not in self._slices:
                self._slices[bounds] = self._client.get_xcom_sequence_slice(
                    self._task_id, *bounds, key=self._key
                )
            return list(self._slices[bounds])
        if not isinstance(key, int) or isinstance(key, bool):
            index = getattr(key, "__index__", None)
            if index is None:
                raise TypeError(f"Sequence indices must be integers or slices not {type(key).__name__}")
            key = index()
        if self._all is not None:
            return self._all[key]
        if key < 0 and self._len is not None:
            key += self._len  # same item, same cache entry
            if key < 0:
                raise IndexError(key - self._len)
        if key not in self._items:
            from .errors import NotFound

            try:
                self._items[key] = self._client.get_xcom_sequence_item(self._task_id, key, self._key)
            except NotFound:
                raise IndexError(key) from None
        return self._items[key]

    def _everything(self) -> list[Any]:
        if self._all is None:
            self._all = self._client.get_xcom_sequence_slice(self._task_id, None, None, None, key=self._key)
            self._len = len(self._all)
        return self._all


def _index(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    index = getattr(value, "__index__", None)
    if index is None:
        raise TypeError("slice indices must be integers or None or have an __index__ method")
    return index()


def pull_reduce(client: MessageClient, ref: binding.XComArg) -> LazyXComSequence:
    """A bound reference to a mapped task's output: the lazy sequence of all its results."""
    return LazyXComSequence(client, ref.task_id, ref.key)


# -- a mapped task instance's element -------------------------------------------------------------
def element_arguments(
    task: Task, client: MessageClient, map_index: int, given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The keyword arguments ``map_index`` of the mapped ``task`` receives from its expand input,
    resolved as Airflow's expand input does (module docstring), type-checked like bound ones.

    ``given`` (``bundle.testing.run_task(arguments=...)``): values that replace resolved ones; when
    it names every expanded parameter nothing is requested."""
    expand_input = task.expand_input
    where = f"task {task.task_id!r} of dag {task.dag.dag_id!r}"
    if expand_input is None:  # callers ask only for mapped tasks' elements
        raise RuntimeError(f"{where} is not mapped: it has no elements")
    if map_index is None or map_index < 0:
        raise RuntimeError(
            f"{where} is mapped, but this task instance has no map index (map_index {map_index}): "
            "can't resolve task-mapping argument without expanding"
        )
    names = expand_input.names()
    if given and names is not None and all(name in given for name in names):
        return {}
    if expand_input.kind == DICT_OF_LISTS:
        values, sources = _dict_of_lists(task, expand_input.value, client, map_index, where)
    else:
        values, sources = _list_of_dicts(task, expand_input.value, client, map_index, where)
    annotations = {param.name: param.annotation for param in task.plan.free}
    for name, value in values.items():
        problem = binding.type_problem(annotations.get(name), value)
        if problem:
            raise TypeError(
                f"{where}: argument {name!r} ({sources[name]}, map index {map_index}) is {problem}"
            )
    return values


def _dict_of_lists(
    task: Task, mapped: dict[str, Any], client: MessageClient, map_index: int, where: str
) -> tuple[dict[str, Any], dict[str, str]]:
    resolved: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    sources: dict[str, str] = {}
    for name, value in mapped.items():
        if isinstance(value, binding.XComArg):
            sources[name] = f"element of XCom {value.key!r} of task {value.task_id!r}"
            if value.task.is_mapped:  # a mapped upstream: its results, counted, one item fetched
                value = LazyXComSequence(client, value.task_id, value.key)
            else:
                value = _pull_mappable(task, client, value, where, name)
        else:
            sources[name] = "element of the literal it maps over"
        resolved[name] = value
        lengths[name] = len(value)
    # Airflow's ``_expand_mapped_field``: the last argument varies fastest.
    positions: dict[str, int] = {}
    index = map_index
    for name in reversed(mapped):
        length = lengths[name]
        if length < 1:
            raise RuntimeError(
                f"{where}: cannot expand field mapped to length {length!r} (argument {name!r})"
            )
        positions[name] = index % length
        index //= length
    values: dict[str, Any] = {}
    for name, value in resolved.items():
        position = positions[name]
        if isinstance(value, dict):
            values[name] = _dict_item(value, position, map_index)
        else:
            values[name] = value[position]
    return values, sources


def _dict_item(value: dict[str, Any], position: int, map_index: int) -> tuple[str, Any]:
    """A dict maps to its ``(key, value)`` pairs, in insertion order (what the JSON keeps)."""
    for i, item in enumerate(value.items()):
        if i == position:
            return item
    raise IndexError(f"index {map_index} is over mapped length")


def _pull_mappable(task: Task, client: MessageClient, ref: binding.XComArg, where: str, name: str) -> Any:
    """An unmapped upstream's output mapped over: one ``GetXCom`` (map index -1); it must be a
    list or a dict."""
    value = client.get_xcom(ref.task_id, ref.key, map_index=-1, default=_MISSING)
    if value is _MISSING or value is None:
        raise TypeError(
            f"{where}: argument {name!r} maps over XCom {ref.key!r} of task {ref.task_id!r}, which was "
            "not pushed (the upstream did not push XCom for task mapping)"
        )
    if not isinstance(value, (list, dict)):
        raise TypeError(
            f"{where}: argument {name!r} maps over XCom {ref.key!r} of task {ref.task_id!r}: can't map "
            f"over value of type {type(value)} ({_short(value)}); it must be a list or a dict"
        )
    return value


def _list_of_dicts(
    task: Task, source: Any, client: MessageClient, map_index: int, where: str
) -> tuple[dict[str, Any], dict[str, str]]:
    if isinstance(source, binding.XComArg):
        what = f"XCom {source.key!r} of task {source.task_id!r}"
        if source.task.is_mapped:  # one item of the mapped upstream's results
            mappings: Any = LazyXComSequence(client, source.task_id, source.key)
        else:
            mappings = client.get_xcom(source.task_id, source.key, map_index=-1, default=None)
            if not isinstance(mappings, list):
                raise ValueError(
                    f"{where}: expand_kwargs() over {what}: expand_kwargs() expects a list[dict], "
                    f"not {_describe_type(mappings)}"
                )
        mapping = mappings[map_index]
    else:
        what = "the literal list of dicts"
        mapping = source[map_index]
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f"{where}: expand_kwargs() over {what}: expand_kwargs() expects a list[dict], "
            f"not list[{_describe_type(mapping)}]"
        )
    free = {param.name for param in task.plan.free}
    unknown = sorted(key for key in mapping if key not in free)
    if unknown:
        raise TypeError(
            f"{where}: expand_kwargs() over {what} gives map index {map_index} the argument(s) "
            f"{', '.join(map(repr, unknown))}, which the task function has no free parameter for"
        )
    partial = sorted(key for key in mapping if key in task.bound)
    if partial:  # Airflow's ``prevent_duplicates`` (expand_kwargs is strict by default)
        noun = "argument" if len(partial) == 1 else "arguments"
        raise TypeError(f"{where}: mapping already partial {noun}: {', '.join(partial)}")
    sources = {key: f"key {key!r} of element {map_index} of {what}" for key in mapping}
    return dict(mapping), sources


def _describe_type(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- the upstream mapped over: mapped_length ------------------------------------------------------
def mapped_length(value: Any) -> int:
    """``len`` of an output some mapped task expands over; Airflow's errors when it cannot be
    (``is_mappable_value``: a list or a dict, strings excluded)."""
    if value is None:
        raise XComForMappingNotPushed()
    if not isinstance(value, (list, tuple, dict)):
        raise UnmappableXComTypePushed(value)
    return len(value)


def push_return_value(client: MessageClient, value: Any, length: int) -> None:
    """``SetXCom`` of ``return_value`` with ``mapped_length``: the scheduler records the length
    (a ``TaskMap`` row) and expands the downstream from it. The server refuses a length over
    ``[core] max_map_length`` (400, "pushed value is too large to map as a downstream's
    dependency"), which fails this task as in Airflow."""
    ti = client._current()
    body = {
        "type": "SetXCom",
        "key": binding.RETURN_KEY,
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "value": value,
        "map_index": ti.map_index,
        "mapped_length": length,
    }
    client._call(body)


# -- map_index_template ---------------------------------------------------------------------------
class MapLabel:
    """The task's ``map_index_template`` rendered over its arguments: ``str.format`` with each
    parameter by name (``"{customer}"``, ``"{row[name]}"``, ``"{x}-{y}"``).

    As in Airflow's task runner: rendered once the arguments are known and sent with
    ``SetRenderedMapIndex`` (a failure there is only logged), rendered again after the task
    function returned (a failure then fails the task; a changed label is sent again), and carried
    by the terminal message so the label survives it (``text``)."""

    __slots__ = ("arguments", "error", "task", "template", "text")

    def __init__(self, task: Task, template: str, arguments: Mapping[str, Any]):
        self.task = task
        self.template = template
        self.arguments = dict(arguments)
        self.text: str | None = None
        self.error: BaseException | None = None

    def render(self) -> str:
        try:
            return self.template.format(**self.arguments)
        except KeyError as exc:
            defaults = _defaults(self.task)
            if exc.args and exc.args[0] in defaults:
                return self.template.format(**{**defaults, **self.arguments})
            raise MapIndexTemplateError(self.task, self.template, exc) from exc
        except (IndexError, ValueError, AttributeError, TypeError) as exc:
            raise MapIndexTemplateError(self.task, self.template, exc) from exc

    def send_early(self, client: MessageClient) -> None:
        """Before the task function runs; errors are logged at debug level, as Airflow does."""
        try:
            text = self.render()
            if text:
                client._call({"type": "SetRenderedMapIndex", "rendered_map_index": text})
                self.text = text
        except Exception as exc:
            self.error = exc
            runtime_log().debug(
                "Early rendering of map_index_template failed, will retry after task execution"
            )

    def after_success(self, client: MessageClient) -> None:
        """After the task function returned: render again (errors fail the task) and send the
        label when it changed."""
        text = self.render()
        if text and text != self.text:
            client._call({"type": "SetRenderedMapIndex", "rendered_map_index": text})
            self.text = text


class MapIndexTemplateError(ValueError):
    """A ``map_index_template`` that does not render over the task's arguments."""

    def __init__(self, task: Task, template: str, cause: BaseException):
        names = ", ".join(param.name for param in task.plan.free) or "none"
        detail = (
            f"no argument {cause.args[0]!r}"
            if isinstance(cause, KeyError)
            else f"{type(cause).__name__}: {cause}"
        )
        super().__init__(
            f"task {task.task_id!r} of dag {task.dag.dag_id!r}: map_index_template {template!r} does not "
            f"render ({detail}); it is a str.format over the task's arguments (its parameters: {names})"
        )


def _defaults(task: Task) -> dict[str, Any]:
    import inspect

    try:
        parameters = inspect.signature(task.fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def start_label(task: Task, context: Context, client: MessageClient, arguments: Mapping[str, Any]) -> None:
    """Render and send the task's label once its arguments are resolved (``context.map_label``)."""
    template = task.effective_options.get("map_index_template")
    if template is None:
        return
    label = MapLabel(task, template, arguments)
    context.map_label = label
    label.send_early(client)


def label_on_resume(task: Task, context: Context, client: MessageClient) -> None:
    """A task resumed after a deferral: its arguments resolved again (the same requests as its
    first run) so the label is sent again and repeated in its terminal message, as Airflow's task
    runner renders ``map_index_template`` on every start."""
    arguments = binding.resolve_arguments(task, client, map_index=context.ti.map_index)
    start_label(task, context, client, arguments)
