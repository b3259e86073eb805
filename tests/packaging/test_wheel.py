"""conveyor as a user installs it: the wheel built from this tree, installed with `conveyor[all]` into a fresh venv,
run from a directory that is not the checkout. The README's first command (`conveyor demo`) and `conveyor ui
--demo` must work there: their workflow ships in the package, not in the checkout's examples/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT, eventually, free_port

pytestmark = pytest.mark.slow

# What a wheel is built from; the demo's link into examples/ is followed by the copy.
_SOURCES = ("pyproject.toml", "README.md", "runtime", "operator")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ of a fresh venv with the wheel installed (pip's cache makes the dependencies quick to fetch)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in _SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(source)],
        check=True,
        timeout=600,
    )
    [wheel] = dist.glob("conveyor-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"conveyor[all] @ {wheel.as_uri()}"],
        check=True,
        timeout=900,
    )
    return venv / "bin"


def _env() -> dict[str, str]:
    # Nothing of the checkout on the import path: only what the wheel installed.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def test_the_wheel_holds_conveyor_and_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    found = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import conveyor, conveyor.cli._demo_orders as d; print(conveyor.__file__, d.__file__)",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(installed.parent)) for path in found), found
    demo_file = Path(found[1])
    assert not demo_file.is_symlink() and "class Order(BaseModel)" in demo_file.read_text()


def test_conveyor_demo_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(installed / "conveyor"), "demo", "--runs", "4"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "workflow order-processing" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("all 4 runs finished: ")


def test_conveyor_ui_demo_serves_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    ui = subprocess.Popen(
        [str(installed / "conveyor"), "ui", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def runs() -> list[dict[str, object]] | None:
            if ui.poll() is not None:
                raise AssertionError(
                    f"conveyor ui --demo exited {ui.returncode}: {ui.stdout.read() if ui.stdout else ''}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs?limit=100", timeout=5) as answer:
                    found: list[dict[str, object]] = json.loads(answer.read())["runs"]
            except OSError:
                return None
            return found if found and all(r["run_state"] == "COMPLETED" for r in found) else None

        listed = eventually(runs, timeout=60)
        assert {r["workflow_name"] for r in listed} == {"order-processing"}
        assert {r["status_name"] for r in listed} <= {"FULFILLED", "CANCELLED", "REFUNDED"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
            html = page.read().decode()
        assert "order-processing" in html and listed[0]["foreign_id"] in html
    finally:
        ui.terminate()
        ui.wait(30)
