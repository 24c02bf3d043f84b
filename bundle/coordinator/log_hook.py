"""Install the task-log handler when ``logging`` is first imported, not before.

``logging`` brings ``traceback``, ``linecache``, ``tokenize``, ``textwrap`` and ``string`` with it:
several milliseconds of every coordinator start, for tasks that may never log. The handler only
matters once something can emit a record, and nothing can before ``logging`` is imported, so the
runtime waits for that import: a finder placed first on ``sys.meta_path`` sees ``import logging``
(from the bundle, a library, ``warnings`` or the runtime itself), lets the normal machinery load
the module, and installs the handler as soon as the module has executed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType


def when_imported(name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call ``callback(module)`` once ``name`` is imported; at once if it already is."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    sys.meta_path.insert(0, _ImportWatcher(name, callback))


class _ImportWatcher:
    """A meta-path finder that finds nothing itself: it wraps the real loader of one module."""

    def __init__(self, name: str, callback: Callable[[ModuleType], None]):
        self._name = name
        self._callback = callback

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self._name:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from finding us
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, callback = spec.loader, self._callback

        class _Loader:
            def create_module(self, spec: ModuleSpec) -> ModuleType | None:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)
                callback(module)

            def __getattr__(self, attr: str) -> object:  # get_source, is_package, ...
                return getattr(loader, attr)

        # a duck-typed loader: subclassing importlib.abc.Loader would import it on every start
        spec.loader = _Loader()  # type: ignore[assignment]
        return spec
