"""Debug mode: every decision the engine takes, logged with workflow, foreign id, run id and status.

Off, it costs one boolean test per decision. On, it logs to the `conveyor` logger at DEBUG and, when the
application configured no logging, to stderr so `debug=True` always shows something.

Errors are logged as warnings either way. A process that keeps failing (a database or broker down: every event
it holds fails again after each back-off) is logged once, then at most once per ERROR_LOG_INTERVAL with how many
failures went unlogged meanwhile, so an outage does not bury the log; debug mode logs every failure, and the
process error metric counts every one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from conveyor._core.records import Record

logger = logging.getLogger("conveyor")

ERROR_LOG_INTERVAL = 10.0


class Decisions:
    def __init__(self, workflow_name: str, enabled: bool, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.workflow = workflow_name
        self.enabled = enabled
        self._monotonic = monotonic
        self._quiet_until: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        if enabled:
            if logger.level == logging.NOTSET or logger.level > logging.DEBUG:
                logger.setLevel(logging.DEBUG)
            if not logger.handlers and not logging.getLogger().handlers:
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
                logger.addHandler(handler)

    def log(self, message: str, record: Record | None = None, **fields: Any) -> None:
        if not self.enabled:
            return
        context: dict[str, Any] = {"workflow": self.workflow}
        if record is not None:
            context.update(
                foreign_id=record.foreign_id,
                run_id=record.run_id,
                status=record.status,
                run_state=record.run_state.name,
                version=record.meta.version,
            )
        context.update(fields)
        rendered = " ".join(f"{k}={v}" for k, v in context.items())
        logger.debug("%s [%s]", message, rendered, extra={"conveyor": context})

    def error(self, message: str, exc: BaseException, **fields: Any) -> None:
        rendered = " ".join(f"{k}={v}" for k, v in {"workflow": self.workflow, **fields}.items())
        logger.warning("%s [%s]: %s", message, rendered, exc, exc_info=self.enabled)

    def process_error(self, message: str, exc: BaseException, process: str, **fields: Any) -> None:
        """`error` for a failure of `process`, at most once per ERROR_LOG_INTERVAL per process (every one in debug
        mode); a line after a quiet spell says how many failures went unlogged (`unlogged=N`)."""
        if not self.enabled:
            now = self._monotonic()
            if now < self._quiet_until.get(process, float("-inf")):
                self._unlogged[process] = self._unlogged.get(process, 0) + 1
                return
            self._quiet_until[process] = now + ERROR_LOG_INTERVAL
            unlogged = self._unlogged.pop(process, 0)
            if unlogged:
                fields["unlogged"] = unlogged
        self.error(message, exc, process=process, **fields)
