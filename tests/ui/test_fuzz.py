"""The HTTP entries fuzzed with hypothesis, on the memory store and on real Postgres (where a NUL byte or an
out-of-range integer reaching the driver would be a 500): any query string, form or body gets an answer below
500, a 400 names the field, and a request that is not a well-formed, CSRF-valid action changes no run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from conveyor import RunState
from conveyor._core.ports import RecordStore
from conveyor.adapters.memory import MemoryRecordStore
from conveyor.ui import make_app
from conveyor.ui._query import LIST_FIELDS
from tests.ui.conftest import Runs

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

keys = st.one_of(st.sampled_from([*LIST_FIELDS, "csrf_token", "reason"]), st.text(max_size=8))
values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1",
            "2",
            "7",
            "8",
            "200",
            "201",
            "99999999999999999999",
            "PAUSED",
            "running",
            "CHECKED",
            "asc",
            "desc",
            "\x00",
            "%00",
            "\ud800",
            "1e3",
            " 5",
            "+5",
            "٣",
        ]
    ),
    st.integers().map(str),
)
pairs = st.lists(st.tuples(keys, values), max_size=8)
raw_queries = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_=&%0123456789ABCDEF+.-~", max_size=60)


class Fuzzed:
    """A UI over `store` on an event loop of its own: hypothesis drives the examples synchronously."""

    def __init__(self, store: RecordStore) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = store
        self.runs = Runs(store)
        self.loop.run_until_complete(store.open())
        self.running = self.run(self.runs.make("fuzz-running", run_state=RunState.RUNNING))
        self.done = self.run(self.runs.make("fuzz-done", run_state=RunState.COMPLETED))
        app = make_app(store, workflows=[self.runs.spec], allow_actions=True)

        async def start() -> TestClient[Any, Any]:
            # The cookie jar binds to the running loop: make it inside one.
            client: TestClient[Any, Any] = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
            await client.start_server()
            return client

        self.client: TestClient[Any, Any] = self.run(start())
        self.origin = str(self.client.make_url("")).rstrip("/")

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def snapshot(self) -> list[tuple[RunState, int, int]]:
        async def take() -> list[tuple[RunState, int, int]]:
            out = []
            for record in (self.running, self.done):
                now = await self.store.lookup(record.run_id)
                out.append((now.run_state, now.meta.version, len(await self.store.history(record.run_id))))
            return out

        result: list[tuple[RunState, int, int]] = self.run(take())
        return result

    def close(self) -> None:
        self.run(self.client.close())
        self.run(self.store.close())
        self.loop.close()


@pytest.fixture(params=["memory", "postgres"])
def fuzzed(request: pytest.FixtureRequest) -> Iterator[Fuzzed]:
    if request.param == "memory":
        store: RecordStore = MemoryRecordStore()
    else:
        from conveyor.adapters.postgres import PostgresRecordStore

        store = PostgresRecordStore(request.getfixturevalue("pg_dsn"))
    f = Fuzzed(store)
    yield f
    f.close()


async def check(response: Any) -> int:
    status: int = response.status
    body = await response.text()
    assert status < 500, body
    if status == 400 and response.content_type == "application/json":
        assert json.loads(body)["field"]
    return status


@FUZZ
@given(query=pairs)
def test_any_list_query_is_answered_below_500(fuzzed: Fuzzed, query: list[tuple[str, str]]) -> None:
    try:
        encoded = urlencode(query, quote_via=quote)
    except UnicodeEncodeError:
        encoded = urlencode(
            [(k.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass")) for k, v in query]
        )
    for path in ("/api/runs", "/", f"/api/runs/{fuzzed.running.run_id}", "/workflows"):
        url = URL(f"{path}?{encoded}", encoded=True)
        fuzzed.run(check(fuzzed.run(fuzzed.client.get(url))))


@FUZZ
@given(raw=raw_queries)
def test_any_raw_query_string_is_answered_below_500(fuzzed: Fuzzed, raw: str) -> None:
    for path in ("/api/runs", "/"):
        fuzzed.run(check(fuzzed.run(fuzzed.client.get(URL(f"{path}?{raw}", encoded=True)))))


@FUZZ
@given(
    run=st.sampled_from(["running", "done", "unknown"]),
    action=st.one_of(st.sampled_from(["pause", "resume", "cancel", "delete"]), st.text(min_size=1, max_size=10)),
    form=pairs,
    with_token=st.booleans(),
    origin=st.sampled_from(["same", "evil", None]),
    extra=st.dictionaries(
        st.sampled_from(["Host", "Referer", "Origin", "Cookie"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        max_size=2,
    ),
)
def test_forged_form_posts_change_nothing(
    fuzzed: Fuzzed,
    run: str,
    action: str,
    form: list[tuple[str, str]],
    with_token: bool,
    origin: str | None,
    extra: dict[str, str],
) -> None:
    """Form posts from anywhere but the UI's own page (no token, or another origin) never change a run."""
    if with_token and origin == "same":
        origin = "evil"  # a well-formed, same-origin post is the genuine case, tested elsewhere
    before = fuzzed.snapshot()
    run_id = {"running": fuzzed.running.run_id, "done": fuzzed.done.run_id, "unknown": "nope"}[run]
    headers = {"Origin": fuzzed.origin if origin == "same" else "http://evil.example"} if origin else {}
    # Whatever else a forger sends (an odd Host, Referer or Cookie) must not get it through either.
    headers.update({k: v for k, v in extra.items() if not (k in ("Origin", "Referer") and fuzzed.origin in v)})
    data = [(k, v) for k, v in form if k != "csrf_token"]
    if with_token:
        token = fuzzed.run(fuzzed.run(fuzzed.client.get("/api/csrf")).json())["token"]
        data.append(("csrf_token", token))
    try:
        body = urlencode(data, quote_via=quote).encode()
    except UnicodeEncodeError:
        body = b"reason=%ED%A0%80"
    response = fuzzed.run(
        fuzzed.client.post(
            URL(f"/runs/{quote(run_id)}/{quote(action, safe='')}", encoded=True),
            data=body,
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
        )
    )
    status = fuzzed.run(check(response))
    assert status in (400, 403, 404, 405), status
    assert fuzzed.snapshot() == before


@FUZZ
@given(
    action=st.sampled_from(["pause", "resume", "cancel", "delete", "explode"]),
    body=st.one_of(
        st.none(),
        st.binary(max_size=40),
        st.dictionaries(st.sampled_from(["reason", "why"]), st.one_of(st.text(max_size=30), st.integers())).map(
            lambda d: json.dumps(d).encode()
        ),
    ),
)
def test_api_posts_with_bad_bodies_change_nothing(fuzzed: Fuzzed, action: str, body: bytes | None) -> None:
    """With a valid token and origin: a post is either accepted (and then the run changed as asked) or refused
    with 4xx and nothing changed."""
    before = fuzzed.snapshot()
    token = fuzzed.run(fuzzed.run(fuzzed.client.get("/api/csrf")).json())["token"]
    response = fuzzed.run(
        fuzzed.client.post(
            f"/api/runs/{fuzzed.running.run_id}/{action}",
            data=body,
            headers={"X-CSRF-Token": token, "Origin": fuzzed.origin, "Content-Type": "application/json"},
        )
    )
    status = fuzzed.run(check(response))
    if status == 200:
        # Put it back for the next example: a pause is undone by a resume, anything else by a fresh run.
        state = fuzzed.run(fuzzed.store.lookup(fuzzed.running.run_id)).run_state
        if state is RunState.PAUSED:
            assert action == "pause"
            fuzzed.run(
                fuzzed.client.post(
                    f"/api/runs/{fuzzed.running.run_id}/resume",
                    headers={"X-CSRF-Token": token, "Origin": fuzzed.origin},
                )
            )
        else:
            assert action in ("cancel",) and state is RunState.CANCELLED
            fuzzed.running = fuzzed.run(fuzzed.runs.make(f"fuzz-running-{fuzzed.runs.made}"))
    else:
        assert status in (400, 409), status
        assert fuzzed.snapshot() == before
