"""Cross-site request forgery: a POST that another site could make (no token, a token of its own, a token of
another UI process, the wrong origin, no origin at all) is refused with 403 and leaves the run as it was; the
UI's own form and API posts go through."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import RunState
from conveyor.ui._csrf import COOKIE, Csrf
from tests.ui.conftest import UI, Runs


async def assert_refused(ui: UI, run_id: str, response: Any, why: str) -> None:
    assert response.status == 403, await response.text()
    assert why in await response.text()
    assert await ui.state(run_id) == (RunState.RUNNING, 2)
    assert len(await ui.runs.store.history(run_id)) == 2


async def test_the_cookie_is_same_site_strict_and_http_only(ui: UI) -> None:
    response = await ui.client.get("/api/csrf")
    cookie = response.cookies[COOKIE]
    assert cookie["samesite"] == "Strict"
    assert cookie["httponly"] is True
    assert cookie.value == (await response.json())["token"]


async def test_api_posts_without_a_token_are_refused(ui: UI, runs: Runs) -> None:
    made = await runs.make("f1")
    await ui.token()  # the cookie is there; the header is not
    response = await ui.client.post(f"/api/runs/{made.run_id}/pause", headers={"Origin": ui.origin})
    await assert_refused(ui, made.run_id, response, "CSRF token is missing")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Origin": "http://evil.example"}, "comes from http://evil.example"),
        ({"Origin": "null"}, "comes from null"),
        ({"Referer": "http://evil.example/page"}, "comes from http://evil.example"),
        ({}, "neither an Origin nor a Referer"),
        ({"Referer": "http://[oops/x"}, "Referer is not a URL"),
    ],
)
async def test_posts_from_another_origin_are_refused(ui: UI, runs: Runs, headers: dict[str, str], why: str) -> None:
    made = await runs.make("f2")
    token = await ui.token()
    # aiohttp's client adds no Origin itself: the headers given are all the request has.
    response = await ui.client.post(f"/api/runs/{made.run_id}/pause", headers={"X-CSRF-Token": token, **headers})
    await assert_refused(ui, made.run_id, response, why)


async def test_a_same_origin_referer_without_origin_is_accepted(ui: UI, runs: Runs) -> None:
    made = await runs.make("f3")
    token = await ui.token()
    response = await ui.client.post(
        f"/api/runs/{made.run_id}/pause", headers={"X-CSRF-Token": token, "Referer": f"{ui.origin}/runs/x"}
    )
    assert response.status == 200
    assert (await ui.state(made.run_id))[0] is RunState.PAUSED


@pytest.mark.parametrize("header", ["Origin", "Referer"])
async def test_the_https_origin_of_its_own_host_is_accepted_behind_a_tls_proxy(ui: UI, runs: Runs, header: str) -> None:
    """A proxy that ends TLS forwards the browser's https page's post over http: same host, https, is the UI."""
    made = await runs.make("f-proxy")
    token = await ui.token()
    own = "https://" + ui.origin.split("://", 1)[1]
    value = own if header == "Origin" else f"{own}/runs/{made.run_id}"
    response = await ui.client.post(f"/api/runs/{made.run_id}/pause", headers={"X-CSRF-Token": token, header: value})
    assert response.status == 200, await response.text()
    assert (await ui.state(made.run_id))[0] is RunState.PAUSED


@pytest.mark.parametrize("origin", ["https://evil.example", "https://127.0.0.1.evil.example", "ftp://{host}"])
async def test_other_schemes_and_hosts_over_https_are_still_refused(ui: UI, runs: Runs, origin: str) -> None:
    made = await runs.make("f-proxy-evil")
    token = await ui.token()
    origin = origin.format(host=ui.origin.split("://", 1)[1])
    response = await ui.client.post(f"/api/runs/{made.run_id}/pause", headers={"X-CSRF-Token": token, "Origin": origin})
    await assert_refused(ui, made.run_id, response, f"comes from {origin}")


async def test_a_token_that_does_not_match_the_cookie_is_refused(ui: UI, runs: Runs) -> None:
    made = await runs.make("f4")
    await ui.token()
    other = Csrf().new_token()
    response = await ui.client.post(
        f"/api/runs/{made.run_id}/pause", headers={"X-CSRF-Token": other, "Origin": ui.origin}
    )
    await assert_refused(ui, made.run_id, response, "not valid")


@pytest.mark.parametrize("token", ["made-up.0000", "no-signature", Csrf(b"another process" * 2).new_token()])
async def test_a_token_this_process_did_not_sign_is_refused_even_in_the_cookie(ui: UI, runs: Runs, token: str) -> None:
    made = await runs.make("f5")
    # A cookie an attacker managed to plant (from a sibling subdomain, say) and the same value in the header.
    ui.client.session.cookie_jar.update_cookies({COOKIE: token})
    response = await ui.client.post(
        f"/api/runs/{made.run_id}/pause", headers={"X-CSRF-Token": token, "Origin": ui.origin}
    )
    await assert_refused(ui, made.run_id, response, "not valid")


async def test_form_posts_need_the_pages_token(ui: UI, runs: Runs) -> None:
    made = await runs.make("f6")
    page = await ui.client.get(f"/runs/{made.run_id}")
    html = await page.text()
    token = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    forged = await ui.client.post(
        f"/runs/{made.run_id}/pause", data={"reason": "forged"}, headers={"Origin": ui.origin}
    )
    await assert_refused(ui, made.run_id, forged, "CSRF token is missing")
    cross_site = await ui.client.post(
        f"/runs/{made.run_id}/pause",
        data={"csrf_token": token, "reason": "forged"},
        headers={"Origin": "https://evil.example"},
    )
    await assert_refused(ui, made.run_id, cross_site, "comes from https://evil.example")
    genuine = await ui.client.post(
        f"/runs/{made.run_id}/pause",
        data={"csrf_token": token, "reason": "by hand"},
        headers={"Origin": ui.origin},
        allow_redirects=False,
    )
    assert genuine.status == 303
    assert genuine.headers["Location"] == f"/runs/{made.run_id}"
    record = await runs.store.lookup(made.run_id)
    assert (record.run_state, record.meta.run_state_reason) == (RunState.PAUSED, "by hand")


async def test_form_posts_are_refused_when_actions_are_disabled(ui_readonly: UI, runs: Runs) -> None:
    made = await runs.make("f7")
    page = await (await ui_readonly.client.get(f"/runs/{made.run_id}")).text()
    assert "csrf_token" not in page and "action-pause" not in page
    token = await ui_readonly.token()
    response = await ui_readonly.client.post(
        f"/runs/{made.run_id}/pause", data={"csrf_token": token}, headers={"Origin": ui_readonly.origin}
    )
    await assert_refused(ui_readonly, made.run_id, response, "actions are disabled")


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.nip.io", "LOCALHOST.evil"])
async def test_host_names_it_was_not_told_are_refused_against_dns_rebinding(ui: UI, runs: Runs, host: str) -> None:
    made = await runs.make("rebound")
    for path in ("/api/runs", "/", f"/runs/{made.run_id}", "/api/csrf"):
        response = await ui.client.get(path, headers={"Host": host})
        assert response.status == 403, path
        assert "does not answer to the host name" in await response.text()
    token = await ui.token()
    response = await ui.client.post(
        f"/api/runs/{made.run_id}/pause",
        headers={"Host": host, "Origin": f"http://{host}", "X-CSRF-Token": token},
    )
    await assert_refused(ui, made.run_id, response, "does not answer to the host name")


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "LocalHost.", "127.0.0.1:1", "[::1]:8080", "10.1.2.3"])
async def test_ip_addresses_and_localhost_are_answered(ui: UI, host: str) -> None:
    assert (await ui.client.get("/api/runs?limit=1", headers={"Host": host})).status == 200


async def test_host_names_it_was_told_are_answered(runs: Runs) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from conveyor.ui import make_app

    for allowed, host, status in (
        (["ui.example.com"], "UI.example.com:443", 200),
        (["ui.example.com"], "other.example.com", 403),
        (["*"], "anything.example", 200),
    ):
        app = make_app(runs.store, allowed_hosts=allowed)
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/api/runs?limit=1", headers={"Host": host})).status == status, (allowed, host)
