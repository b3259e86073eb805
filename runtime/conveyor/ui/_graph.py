"""The workflow's status graph drawn as inline SVG on the server. The UI must work with no internet (no CDN, so
no mermaid.js in the browser) and nothing fetched at runtime; a status graph is small, so a layered layout is
enough: each status sits in the column of its shortest distance from a starting status, steps forward are
straight arrows, arrows back (retries, loops) arc under the columns.

The same drawing carries what the pages know about runs: a run's current status and the path it took (statuses
visited, transitions taken), or a workflow's active runs per status (filled darker the more wait there, in the
warning colour where the oldest is over its lag alert)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from conveyor._engine.spec import WorkflowSpec
from conveyor._engine.visualise import _how

_NODE_H = 34
_COL_GAP = 70
_ROW_GAP = 22
_PAD = 16
_CHAR_W = 7.4
# Room on the left of each column for arcs between statuses of the same column.
_BEND = 36


@dataclasses.dataclass(slots=True)
class _Node:
    value: int
    name: str
    column: int
    row: int = 0
    x: float = 0
    y: float = 0
    width: float = 0


def _layers(spec: WorkflowSpec[Any, Any]) -> dict[int, int]:
    graph = spec.graph
    nodes = graph.nodes
    starts = graph.starting or nodes[:1]
    column = dict.fromkeys(starts, 0)
    frontier = list(starts)
    while frontier:
        following = []
        for node in frontier:
            for target in graph.transitions(node):
                if target not in column:
                    column[target] = column[node] + 1
                    following.append(target)
        frontier = following
    # Statuses no start reaches (only a callback's or a timeout's own start, say) go after the rest.
    last = max(column.values(), default=-1)
    for node in nodes:
        column.setdefault(node, last + 1)
    return column


# Shades of the fill of a status with active runs, by its share of the busiest status's count.
_HEAT_LEVELS = 4


def _heat(count: int, most: int) -> int:
    return max(1, min(_HEAT_LEVELS, -(-count * _HEAT_LEVELS // most)))


def _label(name: str, count: int | None) -> str:
    return name if count is None else f"{name} · {count}"


def svg(
    spec: WorkflowSpec[Any, Any],
    current: int | None = None,
    *,
    path: Sequence[int] = (),
    counts: Mapping[int, int] | None = None,
    late: Collection[int] = (),
) -> Markup:
    """The graph of `spec` as an <svg> element; the status `current` (a run's) is highlighted, the statuses of
    `path` (a run's, in order) and the transitions between them marked; with `counts` (active runs per status)
    each status shows its count and is shaded by it, those in `late` in the warning colour."""
    graph = spec.graph
    taken = set(itertools.pairwise(path))
    visits: dict[int, list[int]] = {}
    for number, status in enumerate(path, start=1):
        visits.setdefault(status, []).append(number)
    most = max((counts or {}).values(), default=0)
    columns = _layers(spec)
    nodes: dict[int, _Node] = {}
    rows: dict[int, int] = {}
    for value in graph.nodes:
        column = columns[value]
        name = spec.status_type(value).name
        label = _label(name, counts.get(value, 0) if counts is not None else None)
        nodes[value] = _Node(value, name, column, rows.get(column, 0), width=max(90.0, len(label) * _CHAR_W + 28))
        rows[column] = rows.get(column, 0) + 1
    widths: dict[int, float] = {}
    for node in nodes.values():
        widths[node.column] = max(widths.get(node.column, 0), node.width)
    x = float(_PAD + _BEND)
    lefts: dict[int, float] = {}
    for column in sorted(widths):
        lefts[column] = x
        x += widths[column] + _COL_GAP
    tallest = max(rows.values(), default=1)
    for node in nodes.values():
        node.width = widths[node.column]
        node.x = lefts[node.column]
        # Columns with fewer statuses are centred against the tallest one.
        offset = (tallest - rows[node.column]) * (_NODE_H + _ROW_GAP) / 2
        node.y = _PAD + offset + node.row * (_NODE_H + _ROW_GAP)
    # Room on the right too, for the loop of a status in the last column that repeats itself.
    width = x - _COL_GAP + _PAD + _BEND
    height = _PAD * 2 + tallest * (_NODE_H + _ROW_GAP) - _ROW_GAP
    backward = 0
    edges: list[str] = []
    for source in graph.nodes:
        for target in graph.transitions(source):
            a, b = nodes[source], nodes[target]
            how = _how(spec, source, target) or "transition"
            title = f"<title>{escape(a.name)} → {escape(b.name)} ({escape(how)})</title>"
            if b.column > a.column:
                x1, y1 = a.x + a.width, a.y + _NODE_H / 2
                x2, y2 = b.x, b.y + _NODE_H / 2
                mid = (x1 + x2) / 2
                line = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2 - 2:.1f},{y2:.1f}"
            elif source == target:
                # A status that repeats itself: a small loop on its right, in the gap before the next column.
                right, top, bottom = a.x + a.width, a.y + 8, a.y + _NODE_H - 8
                line = f"M{right:.1f},{top:.1f} C{right + 34:.1f},{top - 12:.1f} {right + 34:.1f},{bottom + 12:.1f} "
                line += f"{right + 2:.1f},{bottom:.1f}"
            elif b.column == a.column:
                # Within a column: an arc out to the left, clear of the statuses between; it leaves and arrives
                # off the middle, where the arrows from the previous column end, so the two never merge.
                up = b.y < a.y
                y1 = a.y + _NODE_H * (0.25 if up else 0.75)
                y2 = b.y + _NODE_H * (0.75 if up else 0.25)
                bend = a.x - _BEND
                line = f"M{a.x:.1f},{y1:.1f} C{bend:.1f},{y1:.1f} {bend:.1f},{y2:.1f} {b.x - 2:.1f},{y2:.1f}"
            else:
                # Steps back arc below everything, each a little lower, so they stay apart.
                backward += 1
                x1, y1 = a.x + a.width / 2, a.y + _NODE_H
                x2, y2 = b.x + b.width / 2, b.y + _NODE_H + 2
                low = height - _PAD + backward * 14
                line = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{low:.1f} {x2:.1f},{low:.1f} {x2:.1f},{y2:.1f}"
            mark = " taken" if (source, target) in taken else ""
            edges.append(
                f'<path class="edge edge-{escape(how.replace(" / ", "-"))}{mark}" data-from="{source}" '
                f'data-to="{target}" d="{line}" marker-end="url(#arrow{mark and "-taken"})">{title}</path>'
            )
    height += backward * 14 + (8 if backward else 0)
    boxes: list[str] = []
    for node in nodes.values():
        classes = ["node"]
        if node.value in graph.starting:
            classes.append("start")
        if graph.is_terminal(node.value):
            classes.append("terminal")
        if node.value == current:
            classes.append("current")
        extra = ""
        title = f"{escape(node.name)} = {node.value}"
        if node.value in visits:
            classes.append("visited")
            numbers = visits[node.value]
            extra += f' data-visits="{",".join(map(str, numbers))}"'
            title += f" · step {', '.join(map(str, numbers))} of the run's path"
        count = counts.get(node.value, 0) if counts is not None else None
        if count is not None:
            extra += f' data-active="{count}"'
            title += f" · {count} active run{'' if count == 1 else 's'}"
            if count:
                classes.append(f"heat-{_heat(count, most)}")
            if node.value in late:
                classes.append("late")
                title += ", the oldest waiting longer than its lag alert"
        boxes.append(
            f'<g class="{" ".join(classes)}" data-status="{node.value}"{extra}>'
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" height="{_NODE_H}" rx="8"/>'
            f'<text x="{node.x + node.width / 2:.1f}" y="{node.y + _NODE_H / 2 + 4:.1f}" text-anchor="middle">'
            f"{escape(_label(node.name, count))}</text><title>{title}</title></g>"
        )
    return Markup(
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="status graph of {escape(spec.name)}" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        # Markers scale with the stroke: the thicker path's arrow is drawn smaller to come out the same size.
        '<marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="3.8" markerHeight="3.8" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        f"{''.join(edges)}{''.join(boxes)}</svg>"
    )
