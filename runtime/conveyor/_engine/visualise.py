"""The workflow's state diagram as mermaid text, for docs, the CLI (`conveyor graph`) and the UI."""

from __future__ import annotations

from typing import Any

from conveyor._engine.spec import WorkflowSpec


def mermaid(spec: WorkflowSpec[Any, Any], direction: str = "LR") -> str:
    if direction not in {"LR", "TB", "RL", "BT"}:
        raise ValueError("direction: expected one of LR, TB, RL, BT")
    graph = spec.graph
    status_type = spec.status_type

    def node(value: int) -> str:
        return str(status_type(value).name)

    lines = ["---", f"title: {spec.name}", "---", "stateDiagram-v2", f"\tdirection {direction}"]
    for value in graph.nodes:
        label = node(value).replace("_", " ").title()
        lines.append(f"\t{node(value)}: {label}")
    lines.append("")
    for value in graph.starting:
        lines.append(f"\t[*]-->{node(value)}")
    for source in graph.nodes:
        for target in graph.transitions(source):
            how = _how(spec, source, target)
            suffix = f": {how}" if how else ""
            lines.append(f"\t{node(source)}-->{node(target)}{suffix}")
    for value in graph.terminal:
        lines.append(f"\t{node(value)}-->[*]")
    return "\n".join(lines) + "\n"


def _how(spec: WorkflowSpec[Any, Any], source: int, target: int) -> str:
    kinds = []
    step = spec.steps.get(source)
    if step is not None and target in (int(s) for s in step.destinations):
        kinds.append("step")
    if any(target in (int(s) for s in c.destinations) for c in spec.callbacks.get(source, ())):
        kinds.append("callback")
    if any(target in (int(s) for s in t.destinations) for t in spec.timeouts.get(source, ())):
        kinds.append("timeout")
    return " / ".join(kinds)
