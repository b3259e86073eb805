"""Schedules of `Workflow.schedule`: five-field cron (croniter), its @hourly-style names, and the reference's
`@every 1h30m`, each turned into "the next slot after this moment"."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from croniter import croniter

from conveyor.errors import InvalidInput

_EVERY = re.compile(r"^@every\s+(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_schedule(spec: object) -> Callable[[datetime], datetime]:
    """The function giving a schedule's next slot after a moment; InvalidInput naming `cron_spec` otherwise."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInput("cron_spec", "a cron expression such as '*/5 * * * *', '@hourly' or '@every 1h'", spec)
    text = spec.strip()
    every = _EVERY.match(text)
    if text.startswith("@every"):
        if every is None or not any(every.groups()):
            raise InvalidInput("cron_spec", "'@every' followed by a duration such as 1h30m, 5m or 10s", spec)
        hours, minutes, seconds = (int(g or 0) for g in every.groups())
        period = timedelta(hours=hours, minutes=minutes, seconds=seconds)
        if period <= timedelta(0):
            raise InvalidInput("cron_spec", "a positive @every duration", spec)
        return lambda last: last + period
    if not croniter.is_valid(text):
        raise InvalidInput("cron_spec", "a valid cron expression such as '*/5 * * * *' or '@daily'", spec)

    def next_after(last: datetime) -> datetime:
        result: datetime = croniter(text, last).get_next(datetime)
        return result

    return next_after
