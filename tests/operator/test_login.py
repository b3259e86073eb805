"""kopf's login (`_handlers._login`, `_login`): in a pod it goes to $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
the address the operator's own client and its Lease use (client-go's InClusterConfig: an IPv6 host bracketed), not
to kopf's hard-coded DNS name; outside a pod it goes where the kubeconfig says. The session it returns carries the
credentials and reports its requests' outcomes to the operator's ApiReach: answers from the real API server,
failures to connect, and not the requests kopf itself cancels."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import aiohttp
import kopf
import pytest
import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from conveyor_operator import _handlers
from conveyor_operator._login import service_server, traced_session
from conveyor_operator._reach import ApiReach

KOPF_DEFAULT = "https://kubernetes.default.svc"
SERVICE_ACCOUNT = kopf.ConnectionInfo(server=KOPF_DEFAULT, token="sa-token", default_namespace="conveyor-system")
HOST, PORT = "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"


@contextlib.asynccontextmanager
async def logged_in(memo: kopf.Memo | None = None) -> AsyncIterator[kopf.AiohttpSession]:
    # kopf's decorator types the handler as kopf calls it, with every kwarg kopf passes; these are the ones it reads.
    login = cast(Callable[..., Awaitable[kopf.AiohttpSession | None]], _handlers._login)
    found = await login(memo=memo if memo is not None else kopf.Memo(), settings=kopf.OperatorSettings())
    assert isinstance(found, kopf.AiohttpSession)
    try:
        yield found
    finally:
        await found.aiohttp_session.close()


@pytest.fixture
def in_a_pod(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """kopf's service-account reader finds a token (as in a pod); the service variables are unset."""
    monkeypatch.setattr(kopf, "login_with_service_account", lambda **_: SERVICE_ACCOUNT)
    monkeypatch.delenv(HOST, raising=False)
    monkeypatch.delenv(PORT, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("host", "port", "server"),
    [
        ("10.96.0.1", "443", "https://10.96.0.1:443"),
        ("fd00:10:96::1", "6443", "https://[fd00:10:96::1]:6443"),
        ("fe80::1%eth0", "443", "https://[fe80::1%eth0]:443"),
    ],
)
async def test_in_a_pod_kopf_goes_to_the_kubernetes_service_address(
    in_a_pod: pytest.MonkeyPatch, host: str, port: str, server: str
) -> None:
    in_a_pod.setenv(HOST, host)
    in_a_pod.setenv(PORT, port)
    async with logged_in() as login:
        assert login.server == server
        # The rest of the service account's login is kept: its token and namespace.
        assert login.aiohttp_session.headers["Authorization"] == "Bearer sa-token"
        assert login.default_namespace == "conveyor-system"


@pytest.mark.parametrize("env", [{}, {HOST: "10.96.0.1"}, {PORT: "443"}, {HOST: "", PORT: "443"}])
async def test_without_both_service_variables_kopf_keeps_its_default(
    in_a_pod: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        in_a_pod.setenv(name, value)
    async with logged_in() as login:
        assert login.server == KOPF_DEFAULT


def test_the_service_address_is_client_gos() -> None:
    assert service_server({HOST: "10.0.0.1", PORT: "443"}) == "https://10.0.0.1:443"
    assert service_server({HOST: "::1", PORT: "443"}) == "https://[::1]:443"
    assert service_server({}) is None


async def test_outside_a_pod_kopf_goes_where_the_kubeconfig_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(kopf, "login_with_service_account", lambda **_: None)
    # Set, as they are in a pod: they concern only the service account's login.
    monkeypatch.setenv(HOST, "10.96.0.1")
    monkeypatch.setenv(PORT, "443")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://api.example.com:6443"}}],
                "users": [{"name": "u", "user": {"token": "kube-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    async with logged_in() as login:
        assert login.server == "https://api.example.com:6443"
        assert login.aiohttp_session.headers["Authorization"] == "Bearer kube-token"


async def test_the_session_reports_to_the_operators_reach(in_a_pod: pytest.MonkeyPatch) -> None:
    reach = ApiReach()
    memo = kopf.Memo(reach=reach)
    async with logged_in(memo) as login:
        assert [type(t) for t in login.aiohttp_session.trace_configs] == [aiohttp.TraceConfig]
    assert memo.reach is reach
    # kopf run by other means (the tests' in-process operator): a reach of its own, kept in the memo.
    other = kopf.Memo()
    async with logged_in(other):
        assert isinstance(other.reach, ApiReach)


async def test_answers_from_the_api_server_and_failures_to_connect_are_reported(
    kubeconfig: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    assert info is not None
    reach = ApiReach()
    assert reach.readiness() == "kopf has had no answer from the API server yet"
    login = traced_session(info, reach)
    async with login.aiohttp_session as session:
        # Any answer counts, an error status too: the API server was reached.
        for path in ("/version", "/api/v1/namespaces/no-such-namespace"):
            async with session.get(login.server + path) as answer:
                assert answer.status in (200, 404)
        assert reach.readiness() is None
    nowhere = traced_session(kopf.ConnectionInfo(server="https://127.0.0.1:9", insecure=True), reach)
    async with nowhere.aiohttp_session as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(nowhere.server + "/version")
    why = reach.readiness()
    assert why is not None and why.startswith("kopf cannot reach the API server") and "127.0.0.1:9" in why


async def test_a_request_cancelled_by_kopf_is_no_failure() -> None:
    released = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await released.wait()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reach = ApiReach()
    login = traced_session(kopf.ConnectionInfo(server=f"http://127.0.0.1:{port}"), reach)
    try:
        async with login.aiohttp_session as session:
            request = asyncio.ensure_future(session.get(login.server + "/apis"))
            await asyncio.sleep(0.3)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
    finally:
        released.set()
        server.close()
        await server.wait_closed()
    assert reach.readiness() == "kopf has had no answer from the API server yet"  # no error recorded
