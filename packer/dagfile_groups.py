"""Task groups in a generated DAG file: ``with TaskGroup(...):`` blocks and group dependencies.

The bundle's serialization records a group in two places: its members (the ``task_group`` tree,
children by full node id) and its relatives (``upstream_task_ids``... of each group, which only
group-level ``>>`` writes). The file reproduces both with the statements an author would write:

* each task is created inside the ``with`` blocks of its groups, so Airflow prefixes the stub's
  *unprefixed* id (its label) again; a group met again later is re-entered (``with group:``);
* after the task-level edges (all of them, as serialized), one group statement per recorded
  relation: ``t >> group``, ``group >> t``, and ``g1 >> g2`` or ``g2 << g1`` (Airflow records
  different task ids for the two: the leaves of ``g1`` resp. the roots of ``g2``).

Airflow evaluates a group's roots and leaves when the statement runs; here that is with every task
and edge in place, which the bundle may not have had when it linked the group. So each statement's
effects (edges and recorded ids) are computed on the final graph first, and a statement that would
add anything the serialization does not have is refused (``DagFileError``) rather than written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .pysource import INDENT, bracketed, identifier, literal, string

_GROUP_DEFAULTS = {
    "prefix_group_id": True,
    "tooltip": "",
    "ui_color": "CornflowerBlue",
    "ui_fgcolor": "#000",
    "group_display_name": "",
    "doc_md": None,  # core writes it only when the group has one
}
_GROUP_KEYS = frozenset(
    {
        "_group_id",
        "children",
        "upstream_group_ids",
        "downstream_group_ids",
        "upstream_task_ids",
        "downstream_task_ids",
        *_GROUP_DEFAULTS,
    }
)


@dataclass(eq=False)
class Group:
    """One serialized task group (the root has ``label`` None)."""

    group_id: str | None  # the full id, the key its parent's children use
    label: str | None  # ``_group_id``: what ``TaskGroup(...)`` is given
    parent: Group | None
    attributes: dict[str, Any]
    relatives: dict[str, list[str]]
    children: list[str | Group] = field(default_factory=list)
    variable: str = ""

    def chain(self) -> list[Group]:
        """The non-root groups from the outermost down to this one."""
        groups: list[Group] = []
        node: Group | None = self
        while node is not None and node.label is not None:
            groups.append(node)
            node = node.parent
        return groups[::-1]

    def tasks(self) -> list[str]:
        found: list[str] = []
        for child in self.children:
            found.extend(child.tasks() if isinstance(child, Group) else [child])
        return found


class GroupLayout:
    """The groups of one DAG, parsed from its serialized ``task_group``; ``refuse(why)`` builds the
    error for what cannot be written."""

    def __init__(
        self,
        tree: Mapping[str, Any],
        refuse: Callable[[str], Exception],
        taken: set[str],
        *,
        default_args: Mapping[str, Mapping[str, Any]] | None = None,
        value: Callable[[Any, int, int], str] = literal,
    ):
        """``default_args``: each group's own (unmerged), by full group id; ``value(v, indent,
        prefix)`` renders a literal (the renderer's, which notes the imports it needs)."""
        self.refuse = refuse
        self.value = value
        self.default_args = dict(default_args or {})
        self.group_of: dict[str, Group] = {}
        self.label_of: dict[str, str] = {}
        self.groups: list[Group] = []  # non-root, outermost first
        self.root = self._parse(tree, None, None)
        for group in self.groups:
            group.variable = identifier(f"{group.group_id}_group", taken)

    def default_args_of(self, task_id: str) -> dict[str, Any]:
        """What the task's groups give it (Airflow merges each group's over its parent's)."""
        group = self.group_of.get(task_id)
        merged: dict[str, Any] = {}
        for member in group.chain() if group is not None else []:
            merged.update(self.default_args.get(member.group_id or "", {}))
        return merged

    @property
    def has_groups(self) -> bool:
        return bool(self.groups)

    def _parse(self, data: Mapping[str, Any], parent: Group | None, group_id: str | None) -> Group:
        unknown = sorted(set(data) - _GROUP_KEYS)
        if unknown:
            raise self.refuse(f"task group {group_id!r} has {unknown}, which this bundle-pack cannot write")
        relatives = {key: list(data.get(key) or []) for key in sorted(_GROUP_KEYS) if key.endswith("_ids")}
        attributes = {key: data.get(key, default) for key, default in _GROUP_DEFAULTS.items()}
        group = Group(group_id, data.get("_group_id"), parent, attributes, relatives)
        if group.label is None and any(relatives.values()):
            raise self.refuse("the root task group has relatives, which no DAG file can declare")
        if group.label is not None:
            self.groups.append(group)
        prefix = f"{group_id}." if attributes["prefix_group_id"] and group_id else ""
        for node_id, (kind, value) in data.get("children", {}).items():
            if kind == "taskgroup":
                group.children.append(self._parse(value, group, node_id))
            elif kind == "operator" and node_id.startswith(prefix):
                group.children.append(node_id)
                self.group_of[node_id] = group
                self.label_of[node_id] = node_id[len(prefix) :]
            else:
                raise self.refuse(f"task group {group_id!r} holds {kind} {node_id!r} outside its prefix")
        return group

    # -- members ----------------------------------------------------------------------------------
    def instance_lines(self, task_ids: Iterable[str], line: Callable[[str, int], str]) -> list[str]:
        """Each task's creation line (``line(task_id, indent_level)``) inside its groups' blocks, in
        the given order; groups without tasks are created (empty) at the end."""
        lines: list[str] = []
        created: set[Group] = set()
        open_chain: list[Group] = []

        def enter(chain: list[Group]) -> None:
            common = 0
            while common < min(len(open_chain), len(chain)) and open_chain[common] is chain[common]:
                common += 1
            del open_chain[common:]
            for group in chain[common:]:
                level = len(open_chain) + 1
                if group in created:
                    lines.append(f"{INDENT * level}with {group.variable}:")
                else:
                    lines.append(self._with_line(group, level))
                    created.add(group)
                open_chain.append(group)

        for task_id in task_ids:
            enter(self.group_of[task_id].chain())
            lines.append(line(task_id, len(open_chain) + 1))
        for group in self.groups:
            if group not in created:
                enter(group.chain())
                lines.append(f"{INDENT * (len(open_chain) + 1)}pass")
        return lines

    def _with_line(self, group: Group, level: int) -> str:
        items = [string(group.label or "")]
        for key, default in _GROUP_DEFAULTS.items():
            value = group.attributes[key]
            if value != default:
                items.append(f"{key}={self.value(value, level + 1, len(key) + 1)}")
        if self.default_args.get(group.group_id or ""):
            arguments = self.default_args[group.group_id or ""]
            items.append(f"default_args={self.value(arguments, level + 1, len('default_args') + 1)}")
        tail = f" as {group.variable}:"
        call = "TaskGroup" + bracketed("(", items, ")", level, prefix_width=len("with TaskGroup") + len(tail))
        return f"{INDENT * level}with {call}{tail}"

    # -- relatives --------------------------------------------------------------------------------
    def relation_lines(self, edges: set[tuple[str, str]], task_variable: Mapping[str, str]) -> list[str]:
        """The group statements that record every group's relatives, checked against ``edges`` (the
        serialized task-level edges) and the recorded ids on the final graph."""
        by_id = {group.group_id: group for group in self.groups}
        recorded = {
            (group.group_id, key, value)
            for group in self.groups
            for key, values in group.relatives.items()
            for value in values
        }
        # (group id, relative key, id): a group's relative may be a group, whose id is optional
        made: set[tuple[str | None, str, str | None]] = set()
        statements: list[tuple[str, set[tuple[str, str]], set[tuple[str | None, str, str | None]]]] = []
        for group in self.groups:
            for other_id in group.relatives["downstream_group_ids"]:
                other = by_id.get(other_id)
                if other is None:
                    raise self.refuse(
                        f"task group {group.group_id!r} is linked to unknown group {other_id!r}"
                    )
                linked = {
                    (group.group_id, "downstream_group_ids", other_id),
                    (other_id, "upstream_group_ids", group.group_id),
                }
                links = {(u, d) for u in self._leaves(group, edges) for d in self._roots(other, edges)}
                forward = {(other_id, "upstream_task_ids", t) for t in self._leaves(group, edges)}
                backward = {(group.group_id, "downstream_task_ids", t) for t in self._roots(other, edges)}
                if forward <= recorded:
                    statements.append((f"{group.variable} >> {other.variable}", links, linked | forward))
                elif backward <= recorded:
                    statements.append((f"{other.variable} << {group.variable}", links, linked | backward))
                else:
                    raise self._cannot(f"{group.group_id!r} >> {other_id!r}")
                made |= statements[-1][2]
        for group in self.groups:
            for task_id in group.relatives["upstream_task_ids"]:
                if (group.group_id, "upstream_task_ids", task_id) not in made:
                    links = {(task_id, root) for root in self._roots(group, edges)}
                    record: set[tuple[str | None, str, str | None]] = {
                        (group.group_id, "upstream_task_ids", task_id)
                    }
                    statements.append(
                        (f"{self._task(task_variable, task_id)} >> {group.variable}", links, record)
                    )
            for task_id in group.relatives["downstream_task_ids"]:
                if (group.group_id, "downstream_task_ids", task_id) not in made:
                    links = {(leaf, task_id) for leaf in self._leaves(group, edges)}
                    record = {(group.group_id, "downstream_task_ids", task_id)}
                    statements.append(
                        (f"{group.variable} >> {self._task(task_variable, task_id)}", links, record)
                    )
        for text, links, record in statements:
            if not links <= edges or not record <= recorded:
                raise self._cannot(text)
            made |= record
        if made != recorded:
            missing = sorted(recorded - made, key=str)[0]
            raise self.refuse(f"task group {missing[0]!r} records {missing[1]} {missing[2]!r} without a link")
        return [f"{INDENT}{text}" for text, _, _ in statements]

    def _task(self, task_variable: Mapping[str, str], task_id: str) -> str:
        if task_id not in task_variable:
            raise self.refuse(f"a task group is linked to unknown task {task_id!r}")
        return task_variable[task_id]

    def _cannot(self, statement: str) -> Exception:
        return self.refuse(
            f"has a task group dependency ({statement}) whose tasks changed after it was declared; "
            "link task groups after registering their tasks and edges"
        )

    @staticmethod
    def _roots(group: Group, edges: set[tuple[str, str]]) -> list[str]:
        members = set(group.tasks())
        return [t for t in group.tasks() if not any((u, t) in edges for u in members)]

    @staticmethod
    def _leaves(group: Group, edges: set[tuple[str, str]]) -> list[str]:
        members = set(group.tasks())
        return [t for t in group.tasks() if not any((t, d) in edges for d in members)]
