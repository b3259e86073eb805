"""`conveyor graph` (and `demo`, which loads a workflow the same way): `--output json` for scripts, and a bad
ENTRYPOINT named in the error; `conveyor graph diff OLD NEW` over two small versions of one workflow
(graph_old.py and graph_new.py beside this file), as text, as JSON, its exit codes, and two checkouts of one
module loaded apart."""

from __future__ import annotations

import json
import sys
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


# -- conveyor graph diff ----------------------------------------------------------------------------------------------

APPS = str(Path(__file__).resolve().parent)
DIFF = ["graph", "diff", "graph_old:builder", "graph_new:builder", "--path", APPS]

TEXT = """\
--- graph_old:builder (workflow shop)
+++ graph_new:builder (workflow shop)
statuses:
  - REFUNDED (5)
  + CANCELLED (7)
  ~ 4 renamed SHIPPED -> DISPATCHED
  ~ PACKED renumbered 3 -> 6: runs stored at 3 are not at 6
transitions:
  - PAID (2) -> PACKED (3) by step
  - PAID (2) -> REFUNDED (5) by step
  - PACKED (3) -> SHIPPED (4) by step
  + PLACED (1) -> CANCELLED (7) by step
  + PAID (2) -> PACKED (6) by step
  + PACKED (6) -> DISPATCHED (4) by callback
stranded: runs at these statuses when NEW is deployed stay there (NEW moves none of them):
  ! 3 (PACKED in OLD, moved on by a step): NEW has no status 3
"""


def named(name: str, value: int) -> dict[str, object]:
    return {"name": name, "value": value}


def edge(source: tuple[str, int], target: tuple[str, int], by: str) -> dict[str, object]:
    return {"from": named(*source), "to": named(*target), "by": by}


CHANGES = {
    "changed": True,
    "statuses": {
        "added": [named("CANCELLED", 7)],
        "removed": [named("REFUNDED", 5)],
        "renamed": [{"value": 4, "old_name": "SHIPPED", "new_name": "DISPATCHED"}],
        "renumbered": [{"name": "PACKED", "old_value": 3, "new_value": 6}],
    },
    "transitions": {
        "added": [
            edge(("PLACED", 1), ("CANCELLED", 7), "step"),
            edge(("PAID", 2), ("PACKED", 6), "step"),
            edge(("PACKED", 6), ("DISPATCHED", 4), "callback"),
        ],
        "removed": [
            edge(("PAID", 2), ("PACKED", 3), "step"),
            edge(("PAID", 2), ("REFUNDED", 5), "step"),
            edge(("PACKED", 3), ("SHIPPED", 4), "step"),
        ],
    },
    # PACKED's runs are stored at 3, which the new code has no name for: nothing moves them any more. DISPATCHED
    # (4, SHIPPED's number) was terminal before and is still.
    "stranded": [{"value": 3, "old_name": "PACKED", "new_name": None, "old_by": ["step"]}],
}


def test_diff_names_every_kind_of_change() -> None:
    result = CliRunner().invoke(cli, DIFF)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == TEXT


def test_diff_as_json() -> None:
    result = CliRunner().invoke(cli, [*DIFF, "-o", "json"])
    assert result.exit_code == 0, result.stderr
    changes = json.loads(result.stdout)
    assert changes == {
        "old": {"name": "shop", "entrypoint": "graph_old:builder"},
        "new": {"name": "shop", "entrypoint": "graph_new:builder"},
        **CHANGES,
    }


def test_diff_exit_codes() -> None:
    runner = CliRunner()
    same = runner.invoke(cli, ["graph", "diff", "graph_old:builder", "graph_old:builder", "--path", APPS])
    assert same.exit_code == 0, same.stderr
    assert same.stdout.splitlines()[-1] == "no change: the graphs are the same"
    assert (
        json.loads(
            runner.invoke(
                cli, ["graph", "diff", "graph_old:builder", "graph_old:builder", "--path", APPS, "-o", "json"]
            ).stdout
        )["changed"]
        is False
    )
    # --exit-code: 1 when something changed (in either output), 0 when nothing did.
    assert runner.invoke(cli, [*DIFF, "--exit-code"]).exit_code == 1
    assert runner.invoke(cli, [*DIFF, "--exit-code", "-o", "json"]).exit_code == 1
    unchanged = ["graph", "diff", "graph_new:builder", "graph_new:builder", "--path", APPS, "--exit-code"]
    assert runner.invoke(cli, unchanged).exit_code == 0
    # Bad usage is 2, naming the argument.
    for args, message in [
        (["graph", "diff", "no_such:builder", "graph_new:builder", "--path", APPS], "'OLD': cannot import 'no_such'"),
        (["graph", "diff", "graph_old:builder", "graph_new", "--path", APPS], "'NEW': 'graph_new': expected module:"),
        (["graph", "diff", "graph_old:builder", "graph_new:Order", "--path", APPS], "'NEW': graph_new:Order is a"),
        (["graph", "diff", "graph_old:builder"], "Missing argument 'NEW'"),
        ([*DIFF, "-o", "yaml"], "'yaml' is not one of 'text', 'json'"),
    ]:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_two_checkouts_of_one_module_are_loaded_apart(tmp_path: Path) -> None:
    # What a deploy compares: the same package (shop.workflow) in the deployed checkout and in this one.
    for side, source in (("old", "graph_old.py"), ("new", "graph_new.py")):
        package = tmp_path / side / "shop"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "workflow.py").write_text((Path(APPS) / source).read_text())
    path, modules = list(sys.path), set(sys.modules)
    args = ["graph", "diff", "shop.workflow:builder", "shop.workflow:builder", "-o", "json"]
    args += ["--old-path", str(tmp_path / "old"), "--new-path", str(tmp_path / "new")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    changes = json.loads(result.stdout)
    assert {k: v for k, v in changes.items() if k not in ("old", "new")} == CHANGES
    # Neither version stays imported, nor on the import path.
    assert not {m for m in set(sys.modules) - modules if m == "shop" or m.startswith("shop.")}
    assert sys.path == path
    # --path is where a side without its own path is imported from: here NEW, the old side given its own.
    args = ["graph", "diff", "shop.workflow:builder", "shop.workflow:builder", "--exit-code"]
    args += ["--old-path", str(tmp_path / "old"), "--path", str(tmp_path / "new")]
    assert CliRunner().invoke(cli, args).exit_code == 1
    # A workflow's new name is said: runs belong to their workflow's name.
    renamed = CliRunner().invoke(cli, ["graph", "diff", "graph_old:builder", "runs_app:builder", "--path", APPS])
    assert "! workflow renamed shop -> cli-runs: runs belong to their workflow's name" in renamed.stdout


def test_graph_still_takes_its_entrypoint_first_or_last_and_names_diff_in_its_help(tmp_path: Path) -> None:
    runner = CliRunner()  # (which calls the program `cli`)
    first = runner.invoke(cli, ["graph", "--path", EXAMPLE, "orders.workflow:builder"])
    assert first.exit_code == 0 and first.stdout.startswith("---\ntitle: order-processing")
    helped = runner.invoke(cli, ["graph", "--help"])
    assert helped.exit_code == 0
    assert helped.stdout.startswith("Usage: cli graph [OPTIONS] ENTRYPOINT")
    assert "conveyor graph diff OLD NEW" in helped.stdout
    diff_help = runner.invoke(cli, ["graph", "diff", "--help"]).stdout
    assert diff_help.startswith("Usage: cli graph diff [OPTIONS] OLD NEW")
    for option in ("--old-path", "--new-path", "--path", "--output", "--exit-code"):
        assert option in diff_help
    missing = runner.invoke(cli, ["graph"])
    assert missing.exit_code == 2 and "Usage: cli graph [OPTIONS] ENTRYPOINT" in missing.stderr
    # An invalid graph is the entrypoint's problem, in one line (it was a traceback).
    module = f"invalid_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "import enum\nfrom conveyor import Builder\nclass S(enum.IntEnum):\n    A = 1\n"
        "builder = Builder('bad', dict, S)\nbuilder.add_step(S.A, lambda run: S.A, 5)\n"
    )
    for args in (["graph", f"{module}:builder"], ["graph", "diff", f"{module}:builder", "graph_old:builder"]):
        result = runner.invoke(cli, [*args, "--path", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert "workflow 'bad' is invalid:" in result.stderr and "5 is outside S" in result.stderr
        assert "Traceback" not in result.stderr
