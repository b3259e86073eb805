"""The UI served as `conveyor ui` serves it (UIRunner on a real socket): requests aiohttp's parser refuses before any
route runs (a request line or a header over its limits) are answered in the UI's JSON error shape under /api, and
with a short text elsewhere; a long but valid-sized request reaches the UI's own checks, which name the field."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from conveyor.adapters.memory import MemoryRecordStore
from conveyor.ui import UIRunner, make_app
from tests.helpers import free_port
from tests.ui.conftest import make_spec


@pytest.fixture
async def address() -> AsyncIterator[tuple[str, int]]:
    runner = UIRunner(make_app(MemoryRecordStore(), workflows=[make_spec("served")]), handle_signals=False)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield "127.0.0.1", port
    await runner.cleanup()


async def _raw(address: tuple[str, int], request_line: str, *headers: str) -> tuple[int, str, str]:
    """Send one request as bytes; its status, Content-Type and body."""
    reader, writer = await asyncio.open_connection(*address)
    lines = [request_line, f"Host: {address[0]}:{address[1]}", *headers, "Connection: close", "", ""]
    writer.write("\r\n".join(lines).encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode("latin-1").partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    found = dict(line.split(": ", 1) for line in header_lines if ": " in line)
    return int(status_line.split()[1]), found.get("Content-Type", ""), body


async def test_a_long_query_reaches_the_ui_checks_and_names_the_field(address: tuple[str, int]) -> None:
    status, kind, body = await _raw(address, f"GET /api/runs?foreign_id={'x' * 9000} HTTP/1.1")
    assert (status, kind.split(";")[0]) == (400, "application/json")
    answer = json.loads(body)
    assert answer["field"] == "foreign_id" and "at most 1024 characters" in answer["error"]


async def test_a_request_line_over_the_limit_is_a_json_400_under_api(address: tuple[str, int]) -> None:
    status, kind, body = await _raw(address, f"GET /api/runs?foreign_id={'x' * 200_000} HTTP/1.1")
    assert (status, kind.split(";")[0]) == (400, "application/json")
    assert json.loads(body) == {
        "error": "bad request: a request line or header over the server's limit of 131072 bytes"
    }


async def test_a_header_over_the_limit_is_a_json_400(address: tuple[str, int]) -> None:
    status, kind, body = await _raw(address, "GET /api/runs HTTP/1.1", f"X-Padding: {'p' * 40_000}")
    assert (status, kind.split(";")[0]) == (400, "application/json")
    assert "over the server's limit" in json.loads(body)["error"]


async def test_a_page_request_over_the_limit_says_what_was_wrong_in_text(address: tuple[str, int]) -> None:
    status, kind, body = await _raw(address, f"GET /?foreign_id={'x' * 200_000} HTTP/1.1")
    assert status == 400 and kind.startswith("text/plain")
    assert "over the server's limit" in body


async def test_a_malformed_request_under_api_is_json(address: tuple[str, int]) -> None:
    status, kind, body = await _raw(address, "GET /api/runs HTTP/1.1", "Bad Header Without Colon")
    assert (status, kind.split(";")[0]) == (400, "application/json")
    assert json.loads(body)["error"].startswith("bad request: ")


async def test_a_refused_request_is_one_line_in_the_log_not_a_traceback(
    address: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await _raw(address, f"GET /api/runs?foreign_id={'x' * 200_000} HTTP/1.1")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    [said] = [r for r in caplog.records if r.name == "conveyor.ui"]
    assert "refused a request from 127.0.0.1: 400 Bad Request" in said.getMessage() and not said.exc_info
