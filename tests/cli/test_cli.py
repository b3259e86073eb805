"""The command line, run as a user runs it (click's runner in-process, and the installed script once)."""

from __future__ import annotations

import subprocess

from click.testing import CliRunner

from conveyor.cli import cli
from tests.helpers import CONVEYOR, ROOT

EXAMPLE = str(ROOT / "examples" / "order_processing")


def test_demo_shows_every_run_moving_through_its_statuses() -> None:
    result = CliRunner().invoke(cli, ["demo", "--path", EXAMPLE])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("workflow order-processing:")
    order3 = [line.split()[3] for line in lines if " order-3 " in line]
    assert order3 == ["CREATED", "PAYMENT_FAILED", "PAID", "INVENTORY_RESERVED", "FULFILLED"]
    assert lines[-1] == "all 5 runs finished: 1 CANCELLED, 3 FULFILLED, 1 REFUNDED"


def test_demo_with_more_runs() -> None:
    result = CliRunner().invoke(cli, ["demo", "--path", EXAMPLE, "--runs", "12"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("all 12 runs finished")


def test_graph_prints_mermaid() -> None:
    result = CliRunner().invoke(cli, ["graph", "orders.workflow:builder", "--path", EXAMPLE, "--direction", "TB"])
    assert result.exit_code == 0, result.output
    assert "stateDiagram-v2" in result.output
    assert "direction TB" in result.output
    assert "PAYMENT_FAILED-->CANCELLED: step" in result.output


def test_bad_entrypoints_exit_2_naming_the_problem() -> None:
    runner = CliRunner()
    for args, message in [
        (["graph", "no-colon"], "expected module:attribute"),
        (["graph", "no_such_module:builder"], "cannot import 'no_such_module'"),
        (["graph", "orders.workflow:nothing", "--path", EXAMPLE], "has no attribute 'nothing'"),
        (["graph", "orders.workflow:Order", "--path", EXAMPLE], "expected a conveyor.Builder"),
        (["demo", "--runs", "0", "--path", EXAMPLE], "--runs"),
    ]:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)


def test_the_installed_script_runs() -> None:
    result = subprocess.run([str(CONVEYOR), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in ("demo", "graph", "db", "worker"):
        assert command in result.stdout
