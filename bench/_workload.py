"""The workload both benchmarks run: a three-step workflow whose steps do almost nothing, so what is measured is
conveyor (and, in throughput.py, the services under it), not the steps."""

from __future__ import annotations

import enum

from pydantic import BaseModel

from conveyor import Builder, Run


class Item(BaseModel):
    id: str = ""
    steps: int = 0


class Stage(enum.IntEnum):
    RECEIVED = 1
    CHECKED = 2
    PRICED = 3
    DONE = 4


async def check(run: Run[Item, Stage]) -> Stage:
    run.object.steps += 1
    return Stage.CHECKED


async def price(run: Run[Item, Stage]) -> Stage:
    run.object.steps += 1
    return Stage.PRICED


async def finish(run: Run[Item, Stage]) -> Stage:
    run.object.steps += 1
    return Stage.DONE


TRANSITIONS_PER_RUN = 3


def builder(name: str, parallel: int) -> Builder[Item, Stage]:
    b = Builder(name, Item, Stage)
    b.add_step(Stage.RECEIVED, check, Stage.CHECKED).with_options(parallel_count=parallel)
    b.add_step(Stage.CHECKED, price, Stage.PRICED).with_options(parallel_count=parallel)
    b.add_step(Stage.PRICED, finish, Stage.DONE).with_options(parallel_count=parallel)
    return b
