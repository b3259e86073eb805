"""bench/throughput.py at a small size on the session's Postgres and Kafka: its figures, pgbench as context, and
nothing of its own left behind."""

from __future__ import annotations

from tests.bench.conftest import leftovers, run_bench_script


def test_the_single_process_figures_and_pgbench(services_env: dict[str, str]) -> None:
    result = run_bench_script("throughput.py", ["--runs", "60", "--parallel", "1", "--seconds", "1"], services_env, 600)
    assert result["bench"] == "throughput" and result["runs"] == 60
    assert abs(result["transitions_per_second"] - 3 * result["runs_per_second"]) < 1
    assert result["cpu_us_per_transition"] > 0
    assert 0 < result["half_load_p50_ms"] <= result["half_load_p99_ms"]
    assert result["pgbench_commits_per_second"] > 0 and result["pgbench_1_client_commits_per_second"] > 0
    assert "ratio_to_pgbench" not in result["targets"]  # context now, not a target
    assert len(result["workflows"]) == 2
    assert leftovers(services_env, result["workflows"]) == {}
