"""`conveyor graph` (and `demo`, which loads a workflow the same way): `--output json` for scripts, and a bad
ENTRYPOINT named in the error."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from click.testing import CliRunner

from conveyor.cli import cli

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "order_processing")


def test_graph_as_json() -> None:
    result = CliRunner().invoke(cli, ["graph", "orders.workflow:builder", "--path", EXAMPLE, "-o", "json"])
    assert result.exit_code == 0, result.stderr
    graph = json.loads(result.stdout)
    # The shape the UI's /api/workflows gives each workflow.
    assert set(graph) == {"name", "statuses", "transitions", "mermaid"}
    assert graph["name"] == "order-processing"
    statuses = {s["name"]: s for s in graph["statuses"]}
    assert statuses["CREATED"] == {"name": "CREATED", "value": 1, "start": True, "terminal": False}
    assert statuses["FULFILLED"]["terminal"] and not statuses["PAID"]["terminal"]
    edges = {(t["from"]["name"], t["to"]["name"]): t["by"] for t in graph["transitions"]}
    assert edges[("CREATED", "PAID")] == ["step"]
    assert edges[("PAYMENT_FAILED", "CANCELLED")] == ["step"]
    assert graph["mermaid"].startswith("---\ntitle: order-processing")
    assert len(edges) == graph["mermaid"].count("-->") - graph["mermaid"].count("[*]")
    across = CliRunner().invoke(
        cli, ["graph", "orders.workflow:builder", "--path", EXAMPLE, "-o", "json", "--direction", "TB"]
    )
    assert "\tdirection TB" in json.loads(across.stdout)["mermaid"]


def test_a_bad_entrypoint_is_named() -> None:
    for command in ("graph", "demo"):
        result = CliRunner().invoke(cli, [command, "no_such_module:builder"])
        assert result.exit_code == 2
        assert "Invalid value for 'ENTRYPOINT': cannot import 'no_such_module'" in result.stderr


def test_an_entrypoint_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    module = f"raises_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text('raise KeyError("DATABASE_URL")\n')
    for command in ("graph", "demo"):
        result = CliRunner().invoke(cli, [command, f"{module}:builder", "--path", str(tmp_path)])
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        expected = f"'ENTRYPOINT': {module}:builder: KeyError: 'DATABASE_URL' ({tmp_path / module}.py, line 1)"
        assert expected in result.stderr, result.stderr
