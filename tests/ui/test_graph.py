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
