"""``BundleProvider`` (the Go SDK's interface) and ``Bundle`` (the Pythonic way to implement it).

``serve()`` accepts any ``BundleProvider``. ``Bundle`` builds its registry while the module is
imported (so registration errors surface at import), and hands it out without rebuilding; other
providers are asked to ``register_dags`` once per process, as Go does.
"""

from __future__ import annotations

from collections.abc import Callable

from .context import BundleInfo
from .errors import RegistrationError
from .registry import Dag, Registry, Task, validate_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    import weakref
    from typing import Any, Protocol
else:
    Protocol = object  # a plain class at run time: typing costs every start milliseconds


def unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8 (a lone surrogate, e.g. from a mis-decoded byte),
    or None. The name and version end up in manifests, DAG files and logs, which are UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate (U+{ord(text[exc.start]):04X} at position {exc.start}), "
            "which is not valid Unicode text"
        )
    return None


class BundleProvider(Protocol):
    def get_bundle_version(self) -> BundleInfo: ...

    def register_dags(self, registry: Registry) -> None: ...


class Bundle:
    """A bundle of DAGs whose tasks are Python functions.

    ``queue`` is the default queue of every task: Airflow routes a task to a coordinator by its
    queue (``[sdk] queue_to_coordinator``), so set it to the queue your deployment maps to this
    bundle's coordinator."""

    def __init__(self, name: str, version: str | None = None, *, queue: str | None = None):
        if not isinstance(name, str) or not name:
            raise RegistrationError("a bundle needs a non-empty name")
        if problem := unicode_problem(name):
            raise RegistrationError(f"bundle name {name!r}: {problem}")
        if version is not None and not isinstance(version, str):
            raise RegistrationError(f"bundle {name!r}: version must be a str or None")
        if version is not None and (problem := unicode_problem(version)):
            raise RegistrationError(f"bundle {name!r}: version {version!r}: {problem}")
        self.name = name
        self.version = version
        self.registry = Registry(default_queue=queue)

    def __repr__(self) -> str:
        return f"<Bundle {self.name} {self.version or '(unversioned)'} dags={list(self.registry.dags)}>"

    @property
    def queue(self) -> str | None:
        return self.registry.default_queue

    def dag(self, dag_id: str, **options: Any) -> Dag:
        """Declare a DAG with Airflow's DAG attributes (``schedule``, ``start_date``, ``tags``...)."""
        return self.registry.add_dag(dag_id, **options)

    def task_handler(self, dag_id: str, task_id: str, **options: Any) -> Callable[[Callable[..., Any]], Task]:
        """Register a function under explicit ids, for a task a Python DAG declares with
        ``@task.stub``; the DAG is created when it does not exist yet."""
        validate_id("dag", dag_id)

        def register(fn: Callable[..., Any]) -> Task:
            return self.registry.get_or_add_dag(dag_id).add_task_with_name(task_id, fn, **options)

        return register

    # -- BundleProvider ---------------------------------------------------------------------
    def get_bundle_version(self) -> BundleInfo:
        return BundleInfo(self.name, self.version)

    def register_dags(self, registry: Registry) -> None:
        for dag in self.registry:
            registry.adopt(dag)


_registries: weakref.WeakKeyDictionary[Any, Registry] | None = None


def registry_of(provider: BundleProvider) -> Registry:
    """The provider's registry, built once per process, checked complete (every task parameter
    injected, bound or defaulted: binding happens after registration, so only now is it known)."""
    if isinstance(provider, Bundle):
        provider.registry.check_complete()
        return provider.registry
    registry = _built_registry(provider)
    registry.check_complete()
    return registry


def _built_registry(provider: BundleProvider) -> Registry:
    global _registries
    if _registries is None:  # only other providers pay for importing weakref
        import weakref

        _registries = weakref.WeakKeyDictionary()
    try:
        cached = _registries.get(provider)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None:
        return cached
    registry = Registry()
    provider.register_dags(registry)
    try:
        _registries[provider] = registry
    except TypeError:
        pass
    return registry


def check_provider(obj: Any) -> BundleProvider:
    if all(callable(getattr(obj, method, None)) for method in ("get_bundle_version", "register_dags")):
        return obj
    raise TypeError(
        f"{obj!r} is not a bundle: expected a bundle.Bundle or an object with "
        "get_bundle_version() and register_dags(registry)"
    )
