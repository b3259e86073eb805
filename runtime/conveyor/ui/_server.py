"""Serving the UI so that aiohttp's own refusals keep the UI's promise that every error under /api is JSON.

aiohttp answers a request it cannot parse (a request line or header over its limits, a malformed request) itself,
as plain text, before any route or middleware runs. `UIRunner` serves the app with a request handler that answers
those in the UI's JSON error shape when the request was for /api (or its path cannot be told), and with a short
text naming what was wrong otherwise. `make_app` also raises aiohttp's limits above what the UI's own checks allow
(twenty foreign ids of 1,024 characters each, percent-encoded), so such a request reaches those checks and gets a
400 naming the field; only what is larger than any valid request meets the parser's limit.

aiohttp offers no hook for these answers (and logs each with a traceback at ERROR, for what is the client's
mistake), so this subclasses its request handler and server; `web.Server`'s `_loop` and `_kwargs` have been its
attributes since aiohttp 3.0."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

# The request line: a list page with twenty foreign ids of 1,024 characters, each byte percent-encoded as %XX
# (three characters), fits. A header line holds a cookie or a proxy's headers, never user data of that size.
MAX_REQUEST_LINE = 128 * 1024
MAX_HEADER = 16 * 1024
logger = logging.getLogger("conveyor.ui")

HANDLER_ARGS = {"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_HEADER}


def _requested_path(exc: BaseException | None) -> str | None:
    """The path of a request the parser refused for its length, from the start of its line that aiohttp keeps."""
    if not isinstance(exc, LineTooLong) or not exc.args:
        return None
    line = exc.args[0]
    text = bytes(line).decode("latin-1") if isinstance(line, bytes | bytearray) else str(line)
    # aiohttp's C parser keeps the request target, its Python parser the request line.
    if text.startswith("/"):
        return text
    parts = text.split(" ")
    return parts[1] if len(parts) > 1 and parts[1].startswith("/") else None


class _JsonErrorHandler(RequestHandler):
    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status >= 500:
            # A failure of ours, not of the request: aiohttp's answer, and its log line with the traceback.
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:
            raise ConnectionError("a response is under way: no error answer can follow it")
        reason = HTTPStatus(status).phrase
        detail = _detail(exc, reason)
        # The client's mistake: one line, not aiohttp's traceback at ERROR for every malformed request.
        logger.info("refused a request from %s: %s %s: %s", request.remote, status, reason, detail)
        path = _requested_path(exc)
        if path is not None and not path.startswith("/api/"):
            answer = web.Response(status=status, text=f"{status} {reason}: {detail}\n")
        else:
            body = json.dumps({"error": f"{reason.lower()}: {detail}"})
            answer = web.Response(status=status, text=body, content_type="application/json")
        answer.force_close()
        return answer


def _detail(exc: BaseException | None, reason: str) -> str:
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else "its"
        return f"a request line or header over the server's limit of {limit} bytes"
    message = getattr(exc, "message", "") or (str(exc) if exc is not None else "")
    return str(message).strip().splitlines()[0][:200] if str(message).strip() else reason.lower()


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class UIRunner(web.AppRunner):
    """`web.AppRunner` for the UI's app: the same, with aiohttp's own refusals answered as the UI answers errors.

    runner = UIRunner(make_app(store, workflows=[spec]))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 8080).start()
    """

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server
        return server


__all__ = ["HANDLER_ARGS", "UIRunner"]
