"""The latency curve's arithmetic (bench/_load.py): which rates are offered, the percentiles and the knee."""

from __future__ import annotations

import asyncio
import math

from _load import PEER_RATE, Point, knee, offer, offered_rates, percentile


def at(rate: float, p50: float) -> Point:
    return Point(rate, 20, p50, p50 * 2, [p50 / 3] * 3)


def test_rates_run_from_one_to_ninety_percent_of_the_maximum_with_the_peers_rate() -> None:
    rates = offered_rates(1000.0, 10)
    assert rates[0] == 10.0 and rates[-1] == 900.0
    assert PEER_RATE in rates and len(rates) == 11
    assert rates == sorted(rates)


def test_the_peers_rate_is_left_out_above_ninety_percent_of_the_maximum() -> None:
    assert PEER_RATE not in offered_rates(30.0, 10)


def test_percentiles_of_few_values() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0], 0.99) == 2.0
    assert math.isnan(percentile([], 0.5))


def test_the_knee_is_the_last_rate_before_the_median_doubles() -> None:
    flat_then_rising = [at(1, 4.0), at(10, 3.5), at(50, 5.0), at(100, 7.5), at(200, 30.0)]
    assert knee(flat_then_rising) == 50
    assert knee([at(1, 4.0), at(10, 4.2), at(20, 5.0)]) is None
    assert knee([]) is None


async def test_offered_load_is_open_loop() -> None:
    """A trigger that takes longer than the gap between triggers delays none of the later ones."""
    loop = asyncio.get_running_loop()
    started: list[float] = []

    async def slow_trigger(foreign_id: str) -> str:
        started.append(loop.time())
        await asyncio.sleep(0.2)
        return foreign_id

    begin = loop.time()
    ids = await offer(slow_trigger, rate=100.0, seconds=0.2, prefix="x")
    assert ids == [f"x-{i}" for i in range(20)]  # at least 20 runs, in order
    assert started[-1] - begin < 0.19 + 0.1  # the 20th went at about 0.19 s, not after 19 slow triggers
