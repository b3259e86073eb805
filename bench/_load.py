"""Offered load and the latency it meets, shared by the benchmarks that draw a latency curve: triggers sent open-loop
at a fixed rate (each at its own time, whether or not the ones before it have returned, as independent users send
them), trigger-to-completed latencies read back from the stored history, and the curve's table, knee and PNG."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor import RunState

ACTIVE_STATES = [int(RunState.INITIATED), int(RunState.RUNNING), int(RunState.PAUSED)]
# The rate at which our peers were compared (issue 14's latency targets are set there).
PEER_RATE = 36.0


async def unfinished(pool: Any, workflow: str) -> bool:
    """Whether any run of the workflow is still initiated, running or paused: an EXISTS on the index of unfinished
    runs (counting the completed ones read thousands of rows every time and loaded the server under measurement)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM conveyor_runs WHERE workflow_name = %s AND run_state = ANY(%s))",
            (workflow, ACTIVE_STATES),
        )
        row = await cursor.fetchone()
    return bool(row and row[0])


async def drain(pool: Any, workflow: str, timeout: float) -> None:
    """Wait until every triggered run of the workflow has finished; a bench that waits longer reports a failure."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await unfinished(pool, workflow):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"runs of {workflow} still unfinished after {timeout:g} s")
        await asyncio.sleep(0.05)


async def offer(trigger: Callable[[str], Awaitable[str]], rate: float, seconds: float, prefix: str) -> list[str]:
    """Trigger runs `prefix-0`, `prefix-1`, ... at `rate` per second for `seconds` (at least 20 runs), open-loop: a
    slow trigger delays no later one, so what is offered is the rate asked for. Returns the run ids."""
    count = max(20, round(rate * seconds))
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending: list[asyncio.Task[str]] = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.ensure_future(trigger(f"{prefix}-{i}")))
    return list(await asyncio.gather(*pending))


@dataclass(frozen=True)
class Latencies:
    """Trigger-to-completed milliseconds of some runs, and the same split per hop (the time from one stored version
    of a run to the next: the trigger's to the first step's, and so on)."""

    total: list[float]
    hops: list[list[float]]

    def p(self, q: float) -> float:
        return percentile(self.total, q)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def histories(pool: Any, run_ids: list[str]) -> list[tuple[str, list[int], list[float], float]]:
    """Per run: its id, its versions in order, when each was decided (updated_at, seconds since the epoch) and when
    the run was created; one query over the history of every run given."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT run_id, array_agg(version ORDER BY version),"
            " array_agg(EXTRACT(EPOCH FROM updated_at)::float8 ORDER BY version),"
            " min(EXTRACT(EPOCH FROM created_at))::float8"
            " FROM conveyor_run_history WHERE run_id = ANY(%s) GROUP BY run_id",
            (run_ids,),
        )
        return list(await cursor.fetchall())


async def latencies(pool: Any, run_ids: list[str]) -> Latencies:
    """From the history each run left: when it was created and when each later version was stored."""
    rows = await histories(pool, run_ids)
    if len(rows) != len(run_ids):
        raise RuntimeError(f"{len(run_ids) - len(rows)} of {len(run_ids)} runs left no history")
    total, hops = [], []
    for _, _, updated, created in rows:
        total.append((updated[-1] - created) * 1000)
        hops.append([(b - a) * 1000 for a, b in zip([created, *updated[1:-1]], updated[1:], strict=True)])
    return Latencies(total, hops)


def offered_rates(maximum: float, count: int) -> list[float]:
    """`count` rates spread evenly from 1% to 90% of `maximum`, and the peers' rate when it is below the maximum."""
    fractions = [0.01 + (0.90 - 0.01) * i / max(1, count - 1) for i in range(count)]
    rates = {round(maximum * f, 1) for f in fractions}
    if 0.9 * maximum > PEER_RATE:
        rates.add(PEER_RATE)
    return sorted(r for r in rates if r > 0)


@dataclass(frozen=True)
class Point:
    rate: float
    runs: int
    p50_ms: float
    p99_ms: float
    hop_p50_ms: list[float]

    def as_json(self) -> dict[str, Any]:
        return {
            "offered_runs_per_second": self.rate,
            "runs": self.runs,
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "hop_p50_ms": [round(h, 2) for h in self.hop_p50_ms],
        }


def point(rate: float, found: Latencies) -> Point:
    hop_count = min(len(h) for h in found.hops)
    per_hop = [statistics.median(h[i] for h in found.hops) for i in range(hop_count)]
    return Point(rate, len(found.total), found.p(0.50), found.p(0.99), per_hop)


def knee(points: Sequence[Point]) -> float | None:
    """The highest offered rate up to which the median stays within twice the lowest median met at the rates below
    it: past it, latency grows with the load (queues form). The median, not the p99: at the lowest rates a curve
    point holds a few dozen runs, whose p99 is one run. None when the median never doubles within the rates
    measured."""
    floor = None
    for before, after in itertools.pairwise(points):
        floor = before.p50_ms if floor is None else min(floor, before.p50_ms)
        if after.p50_ms > 2 * floor:
            return before.rate
    return None


def at_rate(points: Sequence[Point], rate: float) -> Point | None:
    return next((p for p in points if p.rate == rate), None)


def table(shape: str, points: Sequence[Point]) -> list[str]:
    found = knee(points)
    lines = [
        f"{shape}: trigger-to-completed latency by offered load",
        f"  {'runs/s':>8} {'runs':>6} {'p50 ms':>8} {'p99 ms':>8}  p50 per hop ms",
    ]
    for p in points:
        mark = "  <- knee" if found == p.rate else ""
        hops = " ".join(f"{h:.1f}" for h in p.hop_p50_ms)
        lines.append(f"  {p.rate:>8.1f} {p.runs:>6} {p.p50_ms:>8.1f} {p.p99_ms:>8.1f}  {hops}{mark}")
    lines.append(f"  knee: {f'{found:g} runs/s' if found is not None else 'none within the rates measured'}")
    return lines


def plot(curves: dict[str, Sequence[Point]], maxima: dict[str, float], path: Path) -> None:
    """p50 and p99 against offered runs/s, one colour per shape, each knee marked; written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for (shape, points), colour in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False):
        rates = [p.rate for p in points]
        ax.plot(rates, [p.p50_ms for p in points], "o-", color=colour, label=f"{shape} p50")
        ax.plot(rates, [p.p99_ms for p in points], "s--", color=colour, label=f"{shape} p99")
        found = knee(points)
        if found is not None:
            ax.axvline(found, color=colour, linestyle=":", linewidth=1)
            ax.annotate(
                f"knee {found:g}/s",
                (found, ax.get_ylim()[1] * 0.9),
                color=colour,
                rotation=90,
                ha="right",
                va="top",
                fontsize=8,
            )
        if shape in maxima:
            ax.axvline(maxima[shape], color=colour, linestyle="-", linewidth=0.5, alpha=0.5)
    ax.axvline(PEER_RATE, color="grey", linestyle="-.", linewidth=1, label=f"{PEER_RATE:g} runs/s (peers)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (runs/s, 3 transitions each)")
    ax.set_ylabel("trigger-to-completed latency (ms)")
    ax.set_title("conveyor: latency against offered load")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
