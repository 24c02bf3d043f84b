"""``Record``: the behaviour of a ``typing.NamedTuple`` without its start-up cost.

Every coordinator start pays for what the runtime imports and builds. ``typing`` costs milliseconds
to import, and each ``NamedTuple``/``namedtuple`` class compiles generated source with ``exec``.
A ``Record`` subclass is declared the same way (annotated fields, defaults as class attributes)
and behaves the same way for its users (attribute access, tuple unpacking and equality,
``_replace``, ``_asdict``, ``_fields``, a readable ``repr``, pickling), built without either.
"""

from __future__ import annotations

from operator import itemgetter

TYPE_CHECKING = False
if TYPE_CHECKING:  # importing typing costs milliseconds of every start; annotations are strings
    from typing import Any

_MISSING = object()


class _RecordType(type):
    """Turns annotated fields into tuple slots, as ``NamedTuple`` does, before the class exists
    (``__slots__ = ()`` has to be in the namespace then: instances get no ``__dict__``)."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        fields = tuple(namespace.get("__annotations__", {}))
        defaults = {}
        for index, field in enumerate(fields):
            default = namespace.pop(field, _MISSING)
            if default is not _MISSING:
                defaults[field] = default
            elif defaults:
                raise TypeError(f"{name}: field {field!r} without a default follows one with a default")
            namespace[field] = property(itemgetter(index), doc=f"Alias for field number {index}")
        namespace.setdefault("__slots__", ())
        if fields:
            namespace["_fields"] = fields
            namespace["_field_defaults"] = defaults
        return super().__new__(mcls, name, bases, namespace)


class Record(tuple, metaclass=_RecordType):
    """Subclass with annotated fields, e.g. ``class Point(Record): x: int; y: int = 0``."""

    _fields: tuple[str, ...] = ()
    _field_defaults: dict[str, Any] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__} takes {len(fields)} values, got {len(args)}")
        values = list(args)
        for name in fields[len(args) :]:
            if name in kwargs:
                values.append(kwargs.pop(name))
            elif name in cls._field_defaults:
                values.append(cls._field_defaults[name])
            else:
                raise TypeError(f"{cls.__name__}: missing value for field {name!r}")
        if kwargs:
            extra = next(iter(kwargs))
            raise TypeError(
                f"{cls.__name__}: {'duplicate' if extra in fields else 'unknown'} field {extra!r}"
            )
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True))
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def _replace(self, **changes: Any) -> Any:
        return type(self)(**{**self._asdict(), **changes})

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))
