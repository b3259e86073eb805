"""bench/engine.py at a small size: both GC settings measured, every run completed, one JSON line and a table."""

from __future__ import annotations

import os

from tests.bench.conftest import run_bench_script


def test_the_engine_figures_with_both_gc_settings() -> None:
    result = run_bench_script("engine.py", ["--runs", "300"], dict(os.environ), timeout=300)
    assert result["bench"] == "engine"
    assert result["completed"] == result["runs"] == 300
    assert result["transitions"] == 900
    assert result["cpu_us_per_transition"] > 0 and result["cpu_us_per_transition_default_gc"] > 0
    assert result["traced"] is False
