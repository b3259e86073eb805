"""Per-process options (`.with_options(...)`) and their defaults, which are the reference's."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from conveyor.errors import InvalidInput

DEFAULT_POLLING_FREQUENCY = timedelta(milliseconds=500)
DEFAULT_ERR_BACKOFF = timedelta(seconds=1)
DEFAULT_LAG_ALERT = timedelta(minutes=30)

OUTBOX_POLLING_FREQUENCY = timedelta(milliseconds=250)
OUTBOX_ERR_BACKOFF = timedelta(milliseconds=500)
OUTBOX_LAG_ALERT = timedelta(minutes=1)
OUTBOX_BATCH_LIMIT = 1000
# How often the stranded-runs check counts the active runs the code cannot move (see _engine/stranded.py).
STRANDED_CHECK_INTERVAL = timedelta(seconds=30)
# Events a consumer handles at once by default (different foreign ids only; see _engine/pipeline.py).
DEFAULT_MAX_IN_FLIGHT = 64


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Options of a step, callback, timeout or connector. None means "use the workflow's default"."""

    parallel_count: int | None = None
    polling_frequency: timedelta | None = None
    err_backoff: timedelta | None = None
    lag_alert: timedelta | None = None
    consume_lag: timedelta | None = None
    pause_after_err_count: int | None = None
    # Beyond the reference, which handles one event at a time per shard: events of different foreign ids that a
    # shard handles at once (one foreign id's events always go one after another). 1 is the reference's way.
    max_in_flight: int | None = None

    @classmethod
    def checked(
        cls,
        *,
        parallel_count: object = None,
        polling_frequency: object = None,
        err_backoff: object = None,
        lag_alert: object = None,
        consume_lag: object = None,
        pause_after_err_count: object = None,
        max_in_flight: object = None,
    ) -> Options:
        """Options from user input, each value checked, the error naming the option and what it takes."""
        return cls(
            parallel_count=_count("parallel_count", parallel_count, minimum=1),
            polling_frequency=_duration("polling_frequency", polling_frequency, positive=True),
            err_backoff=_duration("err_backoff", err_backoff),
            lag_alert=_duration("lag_alert", lag_alert),
            consume_lag=_duration("consume_lag", consume_lag),
            pause_after_err_count=_count("pause_after_err_count", pause_after_err_count, minimum=0),
            max_in_flight=_count("max_in_flight", max_in_flight, minimum=1),
        )

    def over(self, base: Options) -> Options:
        """`base` with every option given here put over it (None keeps base's)."""
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}
        return dataclasses.replace(base, **given)


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """Options with every default filled in, as one process uses them."""

    parallel_count: int
    polling_frequency: float
    err_backoff: float
    lag_alert: float
    consume_lag: float
    pause_after_err_count: int
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT


def resolve(own: Options, defaults: Options) -> Resolved:
    def pick(name: str) -> object:
        value = getattr(own, name)
        return value if value is not None else getattr(defaults, name)

    consume_lag = _seconds(pick("consume_lag"), timedelta(0))
    lag_alert_value = pick("lag_alert")
    # As the reference does: a consume lag delays every event, so the default alert threshold moves with it.
    lag_alert = (
        _seconds(lag_alert_value, DEFAULT_LAG_ALERT)
        if lag_alert_value is not None
        else DEFAULT_LAG_ALERT.total_seconds() + consume_lag
    )
    parallel = pick("parallel_count")
    pause_after = pick("pause_after_err_count")
    in_flight = pick("max_in_flight")
    return Resolved(
        parallel_count=parallel if isinstance(parallel, int) else 1,
        polling_frequency=_seconds(pick("polling_frequency"), DEFAULT_POLLING_FREQUENCY),
        err_backoff=_seconds(pick("err_backoff"), DEFAULT_ERR_BACKOFF),
        lag_alert=lag_alert,
        consume_lag=consume_lag,
        pause_after_err_count=pause_after if isinstance(pause_after, int) else 0,
        max_in_flight=in_flight if isinstance(in_flight, int) else DEFAULT_MAX_IN_FLIGHT,
    )


def _seconds(value: object, default: timedelta) -> float:
    return (value if isinstance(value, timedelta) else default).total_seconds()


def _count(field: str, value: object, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(field, f"an integer >= {minimum}", value)
    return value


def _duration(field: str, value: object, *, positive: bool = False) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(field, "a timedelta or a number of seconds", value)
    if isinstance(value, int | float):
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta):
        raise InvalidInput(field, "a timedelta or a number of seconds", value)
    if value < timedelta(0) or (positive and value == timedelta(0)):
        raise InvalidInput(field, "a positive duration" if positive else "a duration >= 0", value)
    return value
