"""The workload every benchmark runs: a three-step workflow whose steps do almost nothing, so what is measured is
conveyor (and, in throughput.py and deployed.py, the services under it), not the steps."""

from __future__ import annotations

import enum
import os

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


# What `conveyor worker _workload:deployed` reads: deployed.py starts one worker per role of a workflow whose name
# is new each run (its rows, topics and Leases are then its own to remove), as the operator starts them from a
# Workflow manifest.
WORKFLOW_VARIABLE = "CONVEYOR_BENCH_WORKFLOW"
PARALLEL_VARIABLE = "CONVEYOR_BENCH_PARALLEL"


def deployed() -> Builder[Item, Stage]:
    """The bench workload named and sharded as the environment says: the entrypoint of deployed.py's workers."""
    return builder(os.environ[WORKFLOW_VARIABLE], int(os.environ.get(PARALLEL_VARIABLE, "4")))
