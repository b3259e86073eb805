"""The WorkflowRun mirror while the API server fails: a failure that repeats every round is one warning with its
message (no traceback unless debugging), said again only when it changes, and "working again" once it is over.
Against a real API server address that refuses connections (as during a restart) and with the client's real
ApiException (the 404 of a cluster without conveyor's CRDs)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from conveyor import Builder
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer
from conveyor.kubernetes._workflowruns import WorkflowRunMirror, _Failures
from tests.cli.worker_app import Ticket, TicketStatus

LOGGER = "conveyor.workflowruns"


def _refusing_kubeconfig(tmp_path: Path) -> str:
    """A kubeconfig of an API server address where nothing listens (bound, then closed: refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: gone, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: gone, user: u}}}}]
current-context: c
"""
    )
    return str(path)


def _mirror(kubeconfig: str) -> WorkflowRunMirror:
    b = Builder("mirror-failing", Ticket, TicketStatus)
    b.add_step(TicketStatus.OPENED, lambda run: TicketStatus.CLOSED, TicketStatus.CLOSED)
    wf = b.build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    return WorkflowRunMirror(wf, "default", interval=0.02, kubeconfig=kubeconfig)


async def test_an_api_server_that_refuses_is_said_once_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # Not debugging: a workflow built with debug=True earlier in the session leaves the conveyor logger at DEBUG,
    # and debugging is what turns the tracebacks on.
    caplog.set_level(logging.INFO, logger="conveyor")
    mirror = _mirror(_refusing_kubeconfig(tmp_path))
    task = asyncio.create_task(mirror.run())
    await asyncio.sleep(1.5)  # dozens of rounds
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == [LOGGER, LOGGER], [r.getMessage() for r in warnings]
    said = sorted(r.getMessage() for r in warnings)
    assert said[0].startswith("listing WorkflowRuns in default: ") and "refused" in said[0].lower(), said
    assert said[1].startswith("publishing the graph into Workflow default/mirror-failing: "), said
    assert not any(r.exc_info for r in warnings)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_repeated_failure_is_said_once_until_it_changes_or_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    failures = _Failures()
    not_found = ApiException(status=404, reason="Not Found")
    for _ in range(60):
        failures.failed("listing", "listing WorkflowRuns in orders", not_found)
    failures.failed("listing", "listing WorkflowRuns in orders", ApiException(status=503, reason="Service Unavailable"))
    failures.recovered("listing", "listing WorkflowRuns in orders")
    failures.recovered("listing", "listing WorkflowRuns in orders")
    failures.failed("listing", "listing WorkflowRuns in orders", not_found)
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO] == [
        ("WARNING", "listing WorkflowRuns in orders: 404 Not Found"),
        ("WARNING", "listing WorkflowRuns in orders: 503 Service Unavailable"),
        ("INFO", "listing WorkflowRuns in orders: working again"),
        ("WARNING", "listing WorkflowRuns in orders: 404 Not Found"),
    ]
    assert not any(r.exc_info for r in caplog.records)


def test_the_traceback_is_kept_for_debugging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as e:
        _Failures().failed("listing", "listing WorkflowRuns in orders", e)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.exc_info
    assert (
        record.getMessage() == "listing WorkflowRuns in orders: ConnectionRefusedError: [Errno 111] Connection refused"
    )
