"""Random mappings for the DAG-file round-trip property (tests/test_dagfile.py's random bundles).

``map_randomly`` declares a task mapped instead of bound: ``expand`` over some of its parameters
(a literal list, a literal dict or an earlier task's output, mapped or not; several give a cross
product), the others given to ``partial()`` as the drawn binding had them (literals or references);
or ``expand_kwargs`` over a literal list of dicts or an earlier task's output. A later task binding
this one's output is then a reduce.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_LITERAL_ITEMS = st.integers(-3, 3) | st.sampled_from(["a", "b c", ""]) | st.none()
_LISTS = st.lists(_LITERAL_ITEMS, max_size=3)
_DICTS = st.dictionaries(st.sampled_from(["k", "key two"]), _LITERAL_ITEMS, max_size=2)


def map_randomly(draw: st.DrawFn, task: Any, arguments: dict[str, Any], upstreams: list[Any]) -> None:
    """Map ``task`` over some of ``arguments``' names (see the module docstring)."""
    names = list(arguments)
    references_allowed = task.options.get("trigger_rule") != "always"  # Airflow refuses it
    mapped_upstreams = [upstream for upstream in upstreams if upstream.is_mapped]
    if mapped_upstreams:  # map over a mapped task's results at least as often as over a plain one's
        upstreams = upstreams + mapped_upstreams * max(1, len(upstreams) - len(mapped_upstreams))
    if draw(st.booleans()):  # expand
        expanded = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
        mapped = {}
        for name in expanded:
            choices = _LISTS | _DICTS
            if references_allowed and upstreams:
                choices = choices | st.sampled_from(upstreams).map(lambda upstream: upstream.output)
            mapped[name] = draw(choices)
        constants = {name: value for name, value in arguments.items() if name not in expanded}
        task.partial(**constants).expand(**mapped)
        return
    constants_names = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names) - 1))
    constants = {name: arguments[name] for name in constants_names}
    rest = [name for name in names if name not in constants_names]
    if references_allowed and upstreams and draw(st.booleans()):
        task.partial(**constants).expand_kwargs(draw(st.sampled_from(upstreams)).output)
        return
    kwargs = draw(st.lists(st.fixed_dictionaries({name: _LITERAL_ITEMS for name in rest}), max_size=3))
    if not kwargs:  # the union of the keys must cover the unbound parameters
        kwargs = [{name: 1 for name in rest}]
    task.partial(**constants).expand_kwargs(kwargs)
