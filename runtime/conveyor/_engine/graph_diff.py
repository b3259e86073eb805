"""What changed between two versions of a workflow's graph, as JSON-ready data (`conveyor graph diff`).

Runs store their status as a number, so a status is its number to the runs already stored and its name to people:

- added / removed: statuses of one graph whose number and name the other graph has neither of;
- renamed: one number, another name (the stored runs at it are now at the new name: harmless if meant, a new
  meaning for old runs if the number was reused);
- renumbered: one name, another number (the stored runs at the old number are not at the new one: they are at
  whatever the new code calls the old number, or at a number it does not know);
- transitions added / removed, each one edge made by a step, a callback or a timeout, between numbers;
- stranded: the numbers the old code moves runs on from (a step, callback or timeout) and the new code does not,
  so that runs at them when the new code is deployed stay there: what its stranded-runs check will count.

A changed workflow name is said too: runs belong to their workflow's name, so none of the old name's would move."""

from __future__ import annotations

import enum
from typing import Any

from conveyor._engine.spec import WorkflowSpec
from conveyor._engine.visualise import _how

Spec = WorkflowSpec[Any, enum.IntEnum]


def _statuses(spec: Spec) -> dict[int, str]:
    """The statuses of the graph, number -> name, in the graph's order."""
    return {value: spec.status_type(value).name for value in spec.graph.nodes}


def _transitions(spec: Spec) -> list[tuple[int, int, str]]:
    """Every edge of the graph and what makes it, in the graph's order."""
    graph = spec.graph
    return [
        (source, target, kind)
        for source in graph.nodes
        for target in graph.transitions(source)
        for kind in _how(spec, source, target).split(" / ")
        if kind
    ]


def _movers(spec: Spec, value: int) -> list[str]:
    """What moves a run on from `value` in this code: step, callback, timeout (none: it stays there)."""
    kinds = [("step", spec.steps), ("callback", spec.callbacks), ("timeout", spec.timeouts)]
    return [kind for kind, found in kinds if value in found]


def graph_diff(old: Spec, new: Spec) -> dict[str, Any]:
    """The changes from `old` to `new` (see the module's docstring); `changed` is False when there are none."""
    before, after = _statuses(old), _statuses(new)
    before_by_name = {name: value for value, name in before.items()}
    after_by_name = {name: value for value, name in after.items()}

    def named(statuses: dict[int, str], value: int) -> dict[str, Any]:
        return {"name": statuses[value], "value": value}

    def edge(statuses: dict[int, str], item: tuple[int, int, str]) -> dict[str, Any]:
        source, target, kind = item
        return {"from": named(statuses, source), "to": named(statuses, target), "by": kind}

    statuses = {
        "added": [named(after, v) for v, name in after.items() if v not in before and name not in before_by_name],
        "removed": [named(before, v) for v, name in before.items() if v not in after and name not in after_by_name],
        "renamed": [
            {"value": v, "old_name": name, "new_name": after[v]}
            for v, name in before.items()
            if v in after and after[v] != name
        ],
        "renumbered": [
            {"name": name, "old_value": v, "new_value": after_by_name[name]}
            for v, name in before.items()
            if name in after_by_name and after_by_name[name] != v
        ],
    }
    old_edges, new_edges = _transitions(old), _transitions(new)
    old_set, new_set = set(old_edges), set(new_edges)
    transitions = {
        "added": [edge(after, e) for e in new_edges if e not in old_set],
        "removed": [edge(before, e) for e in old_edges if e not in new_set],
    }
    new_names = {int(member): member.name for member in new.status_type}
    stranded = [
        {
            "value": v,
            "old_name": before[v],
            "new_name": new_names.get(v),
            "old_by": _movers(old, v),
        }
        for v in sorted(old.consumed - new.consumed)
    ]
    changed = old.name != new.name or any(statuses.values()) or any(transitions.values()) or bool(stranded)
    return {
        "old": {"name": old.name},
        "new": {"name": new.name},
        "changed": changed,
        "statuses": statuses,
        "transitions": transitions,
        "stranded": stranded,
    }
