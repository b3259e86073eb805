"""bench/engine.py at a small size: both GC settings measured, every run completed, one JSON line and a table; and
its count of instructions under callgrind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.bench.conftest import BENCH, run_bench_script
from tests.services import unavailable


def test_the_engine_figures_with_both_gc_settings() -> None:
    result = run_bench_script("engine.py", ["--runs", "300"], dict(os.environ), timeout=300)
    assert result["bench"] == "engine"
    assert result["completed"] == result["runs"] == 300
    assert result["transitions"] == 900
    assert result["cpu_us_per_transition"] > 0 and result["cpu_us_per_transition_default_gc"] > 0
    assert result["traced"] is False


def test_instructions_are_counted_under_callgrind() -> None:
    if shutil.which("valgrind") is None:
        unavailable("valgrind is not on PATH (every machine of this kind has it)")  # fails under CI=true
    result = run_bench_script("engine.py", ["--runs", "40", "--instructions"], dict(os.environ), timeout=600)
    # A transition takes some hundred thousand instructions; the figure is a difference, so it must be sane.
    assert 10_000 < result["instructions_per_transition_default_gc"] < 5_000_000


def test_counting_instructions_needs_two_sizes_and_says_so() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "engine.py"), "--runs", "1", "--instructions"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "argument --instructions: expected --runs >= 2" in done.stderr
