"""Debug mode: every decision the engine takes, logged with workflow, foreign id, run id and status.

Off, it costs one boolean test per decision. On, it logs to the `conveyor` logger at DEBUG and, when the
application configured no logging, to stderr so `debug=True` always shows something."""

from __future__ import annotations

import logging
from typing import Any

from conveyor._core.records import Record

logger = logging.getLogger("conveyor")


class Decisions:
    def __init__(self, workflow_name: str, enabled: bool) -> None:
        self.workflow = workflow_name
        self.enabled = enabled
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
