"""What keeps a generated DAG file safe whatever the bundle's author wrote.

Airflow's DAG processor *imports* the file ``bundle-pack dag-file`` writes, so every value that
comes from the bundle (its name and version, ids, descriptions, docs, params, paths in the header)
is potential code there. The renderer writes each such value only as an escaped string literal, an
escaped comment, or a generated ASCII name (:func:`packer.pysource.identifier`); this module holds
the pieces of that which are not plain literals, and :func:`audit`, the last gate: the rendered file
is parsed and every statement and call in it must be one the generator writes. A bundle value that
would make anything else appear is refused rather than written.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from typing import Any

from .pysource import BUILTIN_NAMES, escaped

# Names the file imports (``from datetime ...``, ``from zoneinfo ...``, ``from airflow.sdk ...``).
IMPORTS = {
    "datetime": frozenset({"datetime", "timedelta", "timezone"}),
    "zoneinfo": frozenset({"ZoneInfo"}),
    "airflow.sdk": frozenset({"DAG", "Asset", "AssetAll", "AssetAny", "Param", "TaskGroup", "task"}),
}
# The module-level helpers the file may define (packer.dagfile_sensors, packer.dagfile_callbacks).
HELPERS = frozenset(
    {"_sensor", "_bundle_dag_callback", "_bundle_executable", "_callback_request", "_run_bundle_dag_callback"}
)
FILE_NAMES = frozenset().union(*IMPORTS.values(), HELPERS)
"""Every module-level name the file binds itself: a generated name never takes one of these."""

# What a value may call: the constructors a literal is written with, and the DAG-callback helper.
_VALUE_CALLS = frozenset(
    {"datetime", "timedelta", "timezone", "ZoneInfo", "Param", "Asset", "AssetAll", "AssetAny", "set"}
)
_CALLBACK_HELPER = "_bundle_dag_callback"
_VALUE_NODES = (
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Set,
    ast.Dict,
    ast.Load,
    ast.UnaryOp,
    ast.USub,
    ast.keyword,
)


def comment_text(text: str) -> str:
    """``text`` for a ``#`` comment: nothing in it can end the comment (``\\n``, ``\\r``, form feeds
    and every other unprintable character are written as escapes, backslashes doubled)."""
    return escaped(text, quote="")


def docstring_text(line: str) -> str:
    """``line`` as the inside of a one-line ``\"\"\"...\"\"\"`` docstring that reads back as ``line``
    and that ``ruff format`` leaves alone: escapes as in a string literal, and a ``"`` escaped
    where it would start the closing quotes (before another ``"`` or at the end) or where ruff would
    pad the docstring (at the start)."""
    text = escaped(line, quote="")
    out = []
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or index == len(text) - 1 or text[index + 1] == '"'):
            out.append('\\"')
        else:
            out.append(char)
    return "".join(out)


def refuse_unwritable_text(document: Any, error: type[Exception]) -> None:
    """Raise ``error`` naming the first text in ``document`` that cannot be written as UTF-8 (one
    with a lone surrogate, which only a hostile or broken bundle produces: Airflow could not store
    it either)."""
    for text in _texts(document):
        for char in text:
            if 0xD800 <= ord(char) <= 0xDFFF:
                shown = repr(text if len(text) <= 60 else text[:60] + "...")
                raise error(
                    f"cannot write a DAG file: the bundle's text {shown} holds a lone surrogate"
                    f" (U+{ord(char):04X}), which UTF-8 cannot encode"
                )


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(key)
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
    elif hasattr(value, "__dataclass_fields__"):  # BundleDocument, DagDocument
        for name in value.__dataclass_fields__:
            yield from _texts(getattr(value, name))


def audit(source: str) -> str | None:
    """None when ``source`` holds only what the generator writes, else what is wrong, in a phrase.

    Allowed: the docstring; the imports of :data:`IMPORTS`; the helpers, byte for byte as written;
    ``with DAG(...)`` / ``with TaskGroup(...) as g`` / ``with g`` blocks holding ``@task.stub``
    functions (docstring or ``...`` body, plain parameters), ``x = stub(...)`` /
    ``stub.partial(...).expand(...)`` assignments, ``_sensor(x, reschedule=...)``,
    ``x.operator._can_skip_downstream = True`` (and ``._is_sensor``), ``a >> b`` / ``a << b`` and ``pass``. Values are
    literals and the calls of :data:`_VALUE_CALLS`. No generated name is ``_``-prefixed, a builtin
    or one of :data:`FILE_NAMES`."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        return f"unparsable ({type(exc).__name__}: {exc})"
    try:
        _Auditor().module(tree)
    except _Unexpected as exc:
        return str(exc)
    return None


class _Unexpected(Exception):
    pass


@functools.cache
def _helper_dumps() -> dict[str, str]:
    from .dagfile_callbacks import HELPER
    from .dagfile_sensors import SENSOR_HELPER

    dumps = {}
    for node in ast.parse("\n".join(SENSOR_HELPER + HELPER)).body:
        assert isinstance(node, ast.FunctionDef)
        dumps[node.name] = ast.dump(node)
    return dumps


class _Auditor:
    def __init__(self) -> None:
        self.helpers = dict(_helper_dumps())
        self.bound: set[str] = set()  # what the file has bound so far (imports, helpers, stubs, vars)
        self.stubs: set[str] = set()

    def fail(self, node: ast.AST, what: str) -> _Unexpected:
        return _Unexpected(f"hold {what} on line {getattr(node, 'lineno', '?')}")

    def module(self, tree: ast.Module) -> None:
        body = list(tree.body)
        if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
            raise self.fail(tree, "no module docstring")
        for node in body[1:]:
            if isinstance(node, ast.ImportFrom):
                allowed = IMPORTS.get(node.module or "")
                for alias in node.names:
                    if node.level or allowed is None or alias.name not in allowed or alias.asname:
                        raise self.fail(node, f"an unexpected import of {alias.name!r}")
                    self.bound.add(alias.name)
            elif isinstance(node, ast.FunctionDef) and node.name in HELPERS:
                if self.helpers.get(node.name) != ast.dump(node):
                    raise self.fail(node, f"a changed helper {node.name!r}")
                self.bound.add(node.name)
            elif isinstance(node, ast.With):
                self.with_block(node, dag=True)
            else:
                raise self.fail(node, f"an unexpected {type(node).__name__} statement")

    def bind(self, node: ast.AST, name: str) -> None:
        if name.startswith("_") or name in BUILTIN_NAMES or name in FILE_NAMES or not name.isascii():
            raise self.fail(node, f"a binding of the reserved or non-ASCII name {name!r}")
        self.bound.add(name)

    def with_block(self, node: ast.With, *, dag: bool) -> None:
        if len(node.items) != 1:
            raise self.fail(node, "a with statement of several items")
        item = node.items[0]
        call, target = item.context_expr, item.optional_vars
        if dag:
            if not (isinstance(call, ast.Call) and _is_name(call.func, "DAG") and target is None):
                raise self.fail(node, "a with statement that is not `with DAG(...)`")
            self.arguments(call)
        elif isinstance(call, ast.Call) and _is_name(call.func, "TaskGroup") and isinstance(target, ast.Name):
            self.arguments(call)
            self.bind(target, target.id)
        elif not (isinstance(call, ast.Name) and call.id in self.bound and target is None):
            raise self.fail(node, "a with statement that is not a task group")
        for statement in node.body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Pass):
            return
        if isinstance(node, ast.With):
            self.with_block(node, dag=False)
        elif isinstance(node, ast.FunctionDef):
            self.stub(node)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                self.instance(node.value)
                self.bind(target, target.id)
            elif (
                isinstance(target, ast.Attribute)
                and target.attr in ("_can_skip_downstream", "_is_sensor")
                and isinstance(target.value, ast.Attribute)
                and target.value.attr == "operator"
                and self.is_variable(target.value.value)
                and isinstance(node.value, ast.Constant)
                and node.value.value is True
            ):
                return
            else:
                raise self.fail(node, "an unexpected assignment")
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.BinOp):
            self.relation(node.value)
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and _is_name(node.value.func, "_sensor")
        ):
            call = node.value
            if not (
                "_sensor" in self.bound
                and len(call.args) == 1
                and self.is_variable(call.args[0])
                and [k.arg for k in call.keywords] == ["reschedule"]
                and isinstance(call.keywords[0].value, ast.Constant)
                and isinstance(call.keywords[0].value.value, bool)
            ):
                raise self.fail(node, "an unexpected _sensor call")
        else:
            raise self.fail(node, f"an unexpected {type(node).__name__} statement")

    def stub(self, node: ast.FunctionDef) -> None:
        decorators = node.decorator_list
        decorator = decorators[0] if len(decorators) == 1 else None
        if isinstance(decorator, ast.Call):
            if decorator.args:
                raise self.fail(node, "a positional @task.stub argument")
            self.arguments(decorator)
            decorator = decorator.func
        if not (
            isinstance(decorator, ast.Attribute)
            and decorator.attr == "stub"
            and _is_name(decorator.value, "task")
        ):
            raise self.fail(node, "a function that is not a @task.stub")
        args = node.args
        if (
            args.posonlyargs
            or args.vararg
            or args.kwonlyargs
            or args.defaults
            or args.kw_defaults
            or node.returns
            or any(arg.annotation for arg in args.args)
            or (args.kwarg is not None and (args.kwarg.arg != "kwargs" or args.kwarg.annotation))
        ):
            raise self.fail(node, "a stub signature with more than plain parameters")
        body = node.body
        if not (
            len(body) == 1
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and (body[0].value.value is Ellipsis or isinstance(body[0].value.value, str))
        ):
            raise self.fail(node, "a stub body that is not a docstring or `...`")
        self.bind(node, node.name)
        self.stubs.add(node.name)

    def instance(self, value: ast.expr) -> None:
        """``stub(...)`` or ``stub.partial(...).expand(...)`` / ``.expand_kwargs(...)``."""
        if not isinstance(value, ast.Call):
            raise self.fail(value, "an assignment that is not a stub call")
        func = value.func
        if isinstance(func, ast.Attribute) and func.attr in ("expand", "expand_kwargs"):
            self.arguments(value, references=True)
            inner = func.value
            if (
                isinstance(inner, ast.Call)
                and isinstance(inner.func, ast.Attribute)
                and inner.func.attr == "partial"
            ):
                if inner.args:
                    raise self.fail(value, "a positional partial() argument")
                self.arguments(inner, references=True)
                inner = inner.func.value
            if not (isinstance(inner, ast.Name) and inner.id in self.stubs):
                raise self.fail(value, "a mapping of something that is not a stub")
        elif isinstance(func, ast.Name) and func.id in self.stubs:
            if value.args:
                raise self.fail(value, "a positional stub argument")
            self.arguments(value, references=True)
        else:
            raise self.fail(value, "an assignment that is not a stub call")

    def relation(self, node: ast.expr) -> None:
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.RShift, ast.LShift))):
            raise self.fail(node, "an unexpected expression statement")
        sides = [node.left, *(node.right.elts if isinstance(node.right, ast.List) else [node.right])]
        if not all(self.is_variable(side) for side in sides):
            raise self.fail(node, "a dependency between things that are not tasks or groups")

    def is_variable(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id in self.bound and node.id not in FILE_NAMES

    def arguments(self, call: ast.Call, *, references: bool = False) -> None:
        for keyword in call.keywords:
            if keyword.arg is None:
                raise self.fail(call, "a ** argument")
            self.value(keyword.value, references)
        for argument in call.args:
            self.value(argument, references)

    def value(self, node: ast.AST, references: bool) -> None:
        """A literal, a value call, an upstream reference (``x_task`` / ``x_task["key"]``) where
        ``references``, ``timezone.utc``, or ``_bundle_dag_callback(...)``."""
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Name)
                and func.id in _VALUE_CALLS | {_CALLBACK_HELPER}
                and func.id in self.bound | {"set"}
            ):
                self.arguments(node, references=references)
                return
            raise self.fail(node, "an unexpected call")
        if isinstance(node, ast.Attribute):
            if node.attr == "utc" and _is_name(node.value, "timezone") and "timezone" in self.bound:
                return
            raise self.fail(node, "an unexpected attribute")
        if isinstance(node, ast.Name):
            if references and self.is_variable(node) and node.id not in self.stubs:
                return
            raise self.fail(node, f"an unexpected name {node.id!r}")
        if isinstance(node, ast.Subscript):
            if references and self.is_variable(node.value) and isinstance(node.slice, ast.Constant):
                if isinstance(node.slice.value, str):
                    return
            raise self.fail(node, "an unexpected subscript")
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if key is None:
                    raise self.fail(node, "a ** in a dict")
                self.value(key, references)
            for item in node.values:
                self.value(item, references)
            return
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
                return
            raise self.fail(node, "an unexpected operator")
        if not isinstance(node, _VALUE_NODES):
            raise self.fail(node, f"an unexpected {type(node).__name__}")
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.expr_context):
                self.value(child, references)


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name
