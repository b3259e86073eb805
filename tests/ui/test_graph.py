"""The server-drawn SVG of a workflow's graph."""

from __future__ import annotations

import enum
import re
import xml.etree.ElementTree as ET

from pydantic import BaseModel

from conveyor import Builder, Run
from conveyor.ui._graph import svg
from tests.ui.conftest import make_spec

SVG = "{http://www.w3.org/2000/svg}"


def test_every_status_is_a_node_and_every_transition_an_edge() -> None:
    spec = make_spec("parcels")
    root = ET.fromstring(str(svg(spec, current=2)))
    nodes = {g.get("data-status"): g for g in root.iter(f"{SVG}g")}
    assert set(nodes) == {"1", "2", "3", "4"}
    assert [t.text for t in nodes["2"].iter(f"{SVG}text")] == ["CHECKED"]
    assert "current" in (nodes["2"].get("class") or "")
    assert "start" in (nodes["1"].get("class") or "")
    assert "terminal" in (nodes["3"].get("class") or "") and "terminal" in (nodes["4"].get("class") or "")
    edges = [p for p in root.iter(f"{SVG}path") if "edge" in (p.get("class") or "")]
    assert len(edges) == 3
    # Layered: each status to the right of the one it comes from.
    x = {k: float(next(g.iter(f"{SVG}rect")).get("x") or 0) for k, g in nodes.items()}
    assert x["1"] < x["2"] < x["3"] and x["1"] < x["4"]


class Loop(enum.IntEnum):
    START = 1
    WAITING = 2
    DONE = 3
    NEW = 4


class Thing(BaseModel):
    pass


def _next(run: Run[Thing, Loop]) -> Loop:
    return Loop.DONE


def test_loops_steps_back_and_sideways_are_drawn_inside_the_picture() -> None:
    b = Builder("loops <&>", Thing, Loop)
    b.add_step(Loop.NEW, _next, Loop.START, Loop.DONE)
    b.add_step(Loop.DONE, _next, Loop.START)  # DONE and START share a column: an arc between them
    b.add_step(Loop.START, _next, Loop.WAITING)
    b.add_step(Loop.WAITING, _next, Loop.START, Loop.WAITING, Loop.DONE)
    drawn = str(svg(b.spec()))
    root = ET.fromstring(drawn)  # well-formed, the workflow's name escaped
    assert "loops &lt;&amp;&gt;" in drawn
    height = float(root.get("height") or 0)
    edges = [p.get("d") or "" for p in root.iter(f"{SVG}path") if "edge" in (p.get("class") or "")]
    assert len(edges) == 7
    width = float(root.get("width") or 0)
    points = [(float(x), float(y)) for d in edges for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]
    assert all(0 <= x <= width and 0 <= y <= height for x, y in points)


def test_counts_shade_the_statuses_and_late_ones_take_the_warning_colour() -> None:
    root = ET.fromstring(str(svg(make_spec("parcels"), counts={1: 1, 2: 8, 3: 0, 4: 3}, late={4})))
    nodes = {g.get("data-status"): g for g in root.iter(f"{SVG}g")}
    assert {k: g.get("data-active") for k, g in nodes.items()} == {"1": "1", "2": "8", "3": "0", "4": "3"}
    classes = {k: set((g.get("class") or "").split()) for k, g in nodes.items()}
    # Shades by share of the busiest status: 1/8 the palest, 8/8 the darkest, none for no runs.
    assert "heat-1" in classes["1"] and "heat-4" in classes["2"] and "heat-2" in classes["4"]
    assert not any(c.startswith("heat-") for c in classes["3"])
    assert [k for k, c in classes.items() if "late" in c] == ["4"]
    assert [t.text for t in nodes["2"].iter(f"{SVG}text")] == ["CHECKED · 8"]
    # The label with its count fits in its box.
    rect = next(nodes["2"].iter(f"{SVG}rect"))
    assert float(rect.get("width") or 0) >= len("CHECKED · 8") * 7


def test_a_path_marks_the_statuses_visited_in_order_and_the_transitions_taken() -> None:
    b = Builder("loops", Thing, Loop)
    b.add_step(Loop.NEW, _next, Loop.START)
    b.add_step(Loop.START, _next, Loop.WAITING)
    b.add_step(Loop.WAITING, _next, Loop.START, Loop.WAITING, Loop.DONE)
    root = ET.fromstring(str(svg(b.spec(), current=3, path=[4, 1, 2, 1, 2, 3])))
    nodes = {g.get("data-status"): g for g in root.iter(f"{SVG}g")}
    assert {k: g.get("data-visits") for k, g in nodes.items()} == {"4": "1", "1": "2,4", "2": "3,5", "3": "6"}
    taken = {
        (p.get("data-from"), p.get("data-to"))
        for p in root.iter(f"{SVG}path")
        if "taken" in (p.get("class") or "").split()
    }
    # WAITING -> WAITING (the loop) was never taken.
    assert taken == {("4", "1"), ("1", "2"), ("2", "1"), ("2", "3")}
    assert all(
        p.get("marker-end") == "url(#arrow-taken)"
        for p in root.iter(f"{SVG}path")
        if "taken" in (p.get("class") or "").split()
    )
