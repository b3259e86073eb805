"""bench/deployed.py at a small size on the session's real services: both shapes measured, every figure present, the
latency curve drawn, and nothing of its own left behind (rows, topics, Leases, worker logs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bench.conftest import leftovers, run_bench_script


def shape_is_measured(shape: dict[str, Any], rates: int) -> None:
    assert shape["transitions_per_second"] > 0 and shape["runs_per_second"] > 0
    by_process = shape["cpu_us_per_transition_by_process"]
    assert {"bench process", "postgres", "kafka broker", "kube-apiserver"} <= set(by_process)
    assert shape["cpu_us_per_transition"] == pytest.approx(sum(by_process.values()), abs=1.0)
    assert by_process["postgres"] > 0
    at_rest = shape["rest_cpu_ms_per_second_by_process"]
    assert set(at_rest) == set(by_process)  # the same processes, read with nothing to do
    assert shape["rest_cpu_ms_per_second"] == pytest.approx(sum(at_rest.values()), abs=1.0)
    assert at_rest["kafka broker"] > 0  # a broker at rest still answers fetches and heartbeats
    points = shape["latency"]
    assert len(points) >= rates
    for point in points:
        assert 0 < point["p50_ms"] <= point["p99_ms"]
        assert len(point["hop_p50_ms"]) == 3  # trigger -> CHECKED -> PRICED -> DONE
    assert [p["offered_runs_per_second"] for p in points] == sorted(p["offered_runs_per_second"] for p in points)
    hop = shape["hop_split"]  # every hop's event was published, in both shapes
    assert hop["offered_runs_per_second"] in [p["offered_runs_per_second"] for p in points]
    assert hop["decided_to_published_p50_ms"] > -0.5  # Kafka's timestamps are whole milliseconds
    assert isinstance(hop["published_to_next_decided_p50_ms"], float)


def test_the_deployed_shape_against_the_single_process(services_env: dict[str, str], tmp_path: Path) -> None:
    png = tmp_path / "curve.png"
    # 300 runs: a process's CPU time is counted in 10 ms ticks, and the single process did 40 runs in 0.07 s, where
    # Postgres' backends each spent less than a tick (counted 0); 300 last long enough for every process to count.
    args = ["--runs", "300", "--parallel", "1", "--seconds", "0.5", "--rates", "2", "--rest", "1", "--png", str(png)]
    result = run_bench_script("deployed.py", args, services_env, timeout=600)
    assert result["bench"] == "deployed" and result["runs"] == 300 and result["rest_seconds"] == 1
    deployed, single = result["deployed"], result["single_process"]
    assert deployed["processes"] == 4 and single["processes"] == 1  # 3 steps x 1 shard + the system worker
    shape_is_measured(deployed, rates=2)
    shape_is_measured(single, rates=2)
    assert {"system worker", "step workers"} <= set(deployed["cpu_us_per_transition_by_process"])
    assert deployed["cpu_us_per_transition_by_process"]["step workers"] > 0
    assert result["ratio"] == pytest.approx(deployed["transitions_per_second"] / single["transitions_per_second"], 0.01)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert set(result["pgbench_commits_per_second"]) == {"1", "3"}
    assert len(result["workflows"]) == 2
    assert leftovers(services_env, result["workflows"]) == {}
