"""ApiReach, on an injected clock: not ready until kopf's first answer, nor while its latest request failed; a
leader should step back once kopf has had no answer for `step_back_after`, counted from kopf's start or from the
first failure after its last answer, never while it is answered however quiet it is. Then the real thing: kopf,
running in-process through the operator's login against the real API server, feeds it; cut the connection and
it says so, and a leader would step back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import kopf
import pytest

from conveyor_operator._reach import ApiReach
from tests.adapters.tcp_proxy import TcpProxy
from tests.helpers import until

BOUND = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reach(clock: Clock) -> ApiReach:
    found = ApiReach(step_back_after=BOUND, clock=clock, sleep=clock.sleep)
    found.started()
    return found


def test_not_ready_until_kopfs_first_answer(reach: ApiReach, clock: Clock) -> None:
    assert reach.readiness() == "kopf has had no answer from the API server yet"
    reach.failed(OSError("Temporary failure in name resolution"))
    assert reach.readiness() == (
        "kopf has had no answer from the API server yet: OSError: Temporary failure in name resolution"
    )
    reach.answered()
    assert reach.readiness() is None


def test_not_ready_while_the_latest_request_failed(reach: ApiReach, clock: Clock) -> None:
    reach.answered()
    clock.now += 5
    reach.failed(TimeoutError())
    clock.now += 12
    assert reach.readiness() == "kopf cannot reach the API server (for 12s): TimeoutError"
    reach.answered()
    assert reach.readiness() is None


def test_a_leader_steps_back_after_the_bound_without_an_answer(reach: ApiReach, clock: Clock) -> None:
    reach.answered()
    clock.now += 300  # quiet, but its latest outcome was an answer: all is well
    assert reach.step_back() is None and reach.readiness() is None
    reach.failed(ConnectionRefusedError("refused"))
    clock.now += BOUND - 1
    reach.failed(ConnectionRefusedError("refused again"))  # later failures do not restart the count
    assert reach.step_back() is None
    clock.now += 1
    assert reach.step_back() == (
        "kopf has had no answer from the API server for 60s: ConnectionRefusedError: refused again"
    )
    # One answer and the count starts over from the next failure.
    reach.answered()
    assert reach.step_back() is None
    reach.failed(ConnectionRefusedError("refused"))
    clock.now += BOUND - 1
    assert reach.step_back() is None


def test_no_answer_at_all_since_kopf_started_counts_too(reach: ApiReach, clock: Clock) -> None:
    # kopf's requests hang (nothing failed, nothing answered): that is not reaching the API server either.
    clock.now += BOUND
    assert reach.step_back() == "kopf has had no answer from the API server for 60s"


def test_the_count_starts_when_kopf_starts(clock: Clock) -> None:
    reach = ApiReach(step_back_after=BOUND, clock=clock)
    clock.now += 600  # a standby's wait before it leads
    reach.started()
    assert reach.step_back() is None
    clock.now += BOUND
    assert reach.step_back() is not None


async def test_waiting_for_a_step_back_returns_once_the_bound_has_passed(clock: Clock) -> None:
    started = clock.now
    # What kopf's requests say while the leader waits: an answer at +10, a failure at +30.
    outcomes: dict[float, Callable[[], None]] = {}

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        outcomes.pop(clock.now, lambda: None)()

    reach = ApiReach(step_back_after=BOUND, clock=clock, sleep=sleep)
    reach.started()
    outcomes.update({started + 10: reach.answered, started + 30: lambda: reach.failed(OSError("down"))})
    why = await asyncio.wait_for(reach.wait_step_back(every=1.0), 5)
    # Answered at +10, failing from +30: the bound is counted from the failure.
    assert clock.now == started + 30 + BOUND
    assert why == "kopf has had no answer from the API server for 60s: OSError: down"
    assert set(clock.slept) == {1.0}


# kopf's own requests ------------------------------------------------------------------------------------------


class InProcessKopf:
    """The operator's kopf (its handlers, its login) in a thread of its own, as kopf.testing.KopfRunner runs it,
    with the operator's memo, so the test holds the ApiReach its login reports to."""

    def __init__(self, namespace: str, reach: ApiReach) -> None:
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(namespace, reach), daemon=True)
        self.error: BaseException | None = None

    def _run(self, namespace: str, reach: ApiReach) -> None:
        from conveyor_operator import _handlers  # noqa: F401  # registers the handlers and the login

        try:
            asyncio.run(
                kopf.operator(standalone=True, namespaces=[namespace], memo=kopf.Memo(reach=reach), stop_flag=self.stop)
            )
        except BaseException as e:
            self.error = e

    def __enter__(self) -> InProcessKopf:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "kopf did not stop"
        assert self.error is None, repr(self.error)


async def test_kopfs_requests_say_whether_it_reaches_the_api_server(
    kubeconfig: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with TcpProxy.to_kubeconfig_server(kubeconfig) as proxy:
        monkeypatch.setenv("KUBECONFIG", str(proxy.kubeconfig))  # what kopf's login reads
        reach = ApiReach(step_back_after=3)
        reach.started()
        with InProcessKopf(namespace, reach):
            await until(lambda: reach.readiness() is None, timeout=30, interval=0.1)
            assert reach.step_back() is None
            proxy.cut()  # its watches are reset and every new connection is refused
            await until(
                lambda: (reach.readiness() or "").startswith("kopf cannot reach the API server"),
                timeout=30,
                interval=0.1,
            )
            await until(lambda: reach.step_back() is not None, timeout=30, interval=0.1)
            why = reach.step_back()
            assert why is not None and "Cannot connect to host 127.0.0.1" in why, why
