"""Whether kopf reaches the API server, as kopf's own requests say. The HTTP session kopf uses (built at login,
`_login`) reports the outcome of each of its requests here through aiohttp's tracing: an answer of any status
counts as reached (a 403 or a 409 still came from the API server); a failure to resolve, connect or get an answer
in time counts as unreachable. A request cancelled by kopf itself (a stop, a pause) says nothing either way.

`_main` reads it twice:
- readiness: a replica that runs kopf is ready once kopf has had an answer, and only while its latest outcome is
  an answer (a standby is ready regardless: it is doing what it should);
- stepping back: a leader whose kopf has had no answer for `step_back_after` seconds, counted from kopf's start
  or from the first failure after its last answer, gives its Lease up (`_leader`), so that a standby, which may
  reach the API server, takes over.

The Lease and kopf go to the same address (`_login`), so this catches what they do not share: kopf's own session
(DNS, proxies, TLS, credentials) and a kopf stuck retrying. Between requests nothing is learnt, which is enough:
a healthy kopf's watches reconnect at least once a minute (`_handlers.configure`), so an answer is never far, and
kopf retries a failed request within seconds (its backoffs), then reopens a failed watch, so a failure is never
the last word for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import aiohttp

# The default of `step_back_after`: longer than kopf's retries of one request (about 54 s), so one request that
# keeps failing while others are answered is not enough; a kopf answered by nothing for this long is broken.
STEP_BACK_AFTER = 60.0


class ApiReach:
    """The outcomes of kopf's requests. `clock` and `sleep` are injected for the tests (monotonic seconds)."""

    def __init__(
        self,
        *,
        step_back_after: float = STEP_BACK_AFTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.step_back_after = step_back_after
        self._clock = clock
        self._sleep = sleep
        self._answered = False
        # Since when kopf has had no answer (kopf's start, or the first failure after an answer); None while its
        # latest outcome was an answer.
        self._unanswered_since: float | None = clock()
        self._error: str | None = None

    def started(self) -> None:
        """kopf starts: nothing reached yet, counted from now (a standby's wait before leading does not count)."""
        self._answered = False
        self._unanswered_since = self._clock()
        self._error = None

    def answered(self) -> None:
        self._answered = True
        self._unanswered_since = None
        self._error = None

    def failed(self, error: BaseException) -> None:
        if self._unanswered_since is None:
            self._unanswered_since = self._clock()
        # The type and message: aiohttp's repr of a connection error is mostly its connection key.
        self._error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__

    def readiness(self) -> str | None:
        """None while kopf reaches the API server, else why not (served by /readyz)."""
        if not self._answered:
            return "kopf has had no answer from the API server yet" + self._last_error()
        if self._unanswered_since is not None:
            return f"kopf cannot reach the API server (for {self._waited():.0f}s)" + self._last_error()
        return None

    def step_back(self) -> str | None:
        """Why a leader should give its Lease up now, or None."""
        if self._unanswered_since is None or self._waited() < self.step_back_after:
            return None
        return f"kopf has had no answer from the API server for {self._waited():.0f}s" + self._last_error()

    async def wait_step_back(self, every: float = 1.0) -> str:
        """Return `step_back()`'s reason once there is one, looking every `every` seconds."""
        while (why := self.step_back()) is None:
            await self._sleep(every)
        return why

    def trace_config(self) -> aiohttp.TraceConfig:
        """The tracing that reports a session's requests here."""
        trace = aiohttp.TraceConfig()

        async def on_end(_: aiohttp.ClientSession, __: SimpleNamespace, ___: aiohttp.TraceRequestEndParams) -> None:
            self.answered()

        async def on_exception(
            _: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
        ) -> None:
            if not isinstance(params.exception, asyncio.CancelledError):
                self.failed(params.exception)

        trace.on_request_end.append(on_end)
        trace.on_request_exception.append(on_exception)
        return trace

    def _waited(self) -> float:
        return 0.0 if self._unanswered_since is None else self._clock() - self._unanswered_since

    def _last_error(self) -> str:
        return f": {self._error}" if self._error else ""
