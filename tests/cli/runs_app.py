"""The workflow whose runs tests/cli/test_runs.py lists and steers: `conveyor runs --entrypoint runs_app:builder`
gives the CLI its status names. Its steps never run in those tests; the runs are written to the store directly."""

from __future__ import annotations

import enum

from pydantic import BaseModel

from conveyor import Builder, Run

NAME = "cli-runs"


class Parcel(BaseModel):
    id: str = ""
    weight_grams: int = 0


class ParcelStatus(enum.IntEnum):
    CREATED = 1
    PACKED = 2
    SHIPPED = 3


def pack(run: Run[Parcel, ParcelStatus]) -> ParcelStatus:
    return ParcelStatus.PACKED


def ship(run: Run[Parcel, ParcelStatus]) -> ParcelStatus:
    return ParcelStatus.SHIPPED


builder = Builder(NAME, Parcel, ParcelStatus)
builder.add_step(ParcelStatus.CREATED, pack, ParcelStatus.PACKED)
builder.add_step(ParcelStatus.PACKED, ship, ParcelStatus.SHIPPED)
