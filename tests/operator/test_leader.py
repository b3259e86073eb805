"""The operator's leader election, with two real `conveyor-operator` processes on the real API server: one leads
(holds the Lease and reconciles), the other waits; SIGKILL the leader and the standby reconciles within 15 s; a
SIGTERM'd leader exits 0 and gives the Lease back at once. Their /metrics say which one leads and what it reconciled.

Then `lead` in-process on a real Lease, with a stand-in for kopf: a leader told to step back (its kopf cannot reach
the API server) stops its kopf, releases the Lease, and a standby leads at once; one whose kopf does not stop is
cancelled after a lease duration; one whose Lease is taken stops at once. A standby logs whom it waits for once,
not per poll; each replica logs when it leads and when it no longer does.

The Lease is owned by the operator's Deployment when `lead` is given its name (by the chart, through
CONVEYOR_OPERATOR_DEPLOYMENT): deleting the Deployment deletes the Lease, also after two operators both stopped at
once as in an uninstall; a Deployment that is missing or may not be read costs a warning and the owner only."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies
from kubernetes import client

from conveyor.errors import ServiceUnavailable
from conveyor_operator._leader import LeadershipLost, SteppedBack, deployment_owner, lead
from tests.helpers import GROUP, LEASE_SECONDS, VERSION, Operator, eventually, has_deployments, until, workflow

TAKEOVER_LIMIT = 15.0


@pytest.fixture
def pair(
    request: pytest.FixtureRequest, kubeconfig: str, namespace: str, crds: list[dict[str, Any]]
) -> Iterator[tuple[Operator, Operator, str]]:
    lease = f"leader-{uuid.uuid4().hex[:6]}"
    seconds = getattr(request, "param", LEASE_SECONDS)
    operators = (
        Operator("operator-a", namespace, lease, kubeconfig, seconds),
        Operator("operator-b", namespace, lease, kubeconfig, seconds),
    )
    try:
        yield operators[0], operators[1], lease
    finally:
        for each in operators:
            each.stop()


def read_lease(api: client.ApiClient, namespace: str, lease: str) -> client.V1Lease | None:
    """The Lease, or None if there is none."""
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(lease, namespace)
    except client.exceptions.ApiException as e:
        if e.status == 404:
            return None
        raise


def holder(api: client.ApiClient, namespace: str, lease: str) -> str | None:
    found = read_lease(api, namespace, lease)
    return found.spec.holder_identity if found is not None and found.spec is not None else None


def apply_workflow(api: client.ApiClient, namespace: str, name: str) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", workflow(name, {"CREATED": {"parallelCount": 1}})
    )


def reconciles(operator: Operator, result: str) -> float:
    key = (("kind", "Workflow"), ("result", result))
    return operator.metrics().get("conveyor_operator_reconciles_total", {}).get(key, 0)


def test_the_standby_takes_over_within_15s_of_a_sigkill(
    api: client.ApiClient, namespace: str, pair: tuple[Operator, Operator, str]
) -> None:
    first, second, lease = pair
    leader_name = eventually(lambda: holder(api, namespace, lease), timeout=30)
    leader, standby = (first, second) if leader_name == first.name else (second, first)
    assert leader_name == leader.name
    eventually(lambda: leader.healthy() and standby.healthy(), timeout=15)  # a standby answers its probes too
    # Both ready: the standby as such, the leader once its kopf has had answers from the API server.
    eventually(lambda: leader.ready() and standby.ready(), timeout=15)

    apply_workflow(api, namespace, "before-failover")
    eventually(lambda: has_deployments(api, namespace, "before-failover"), timeout=30)
    # Their /metrics say who leads and what it reconciled.
    assert leader.metrics()["conveyor_operator_leader"] == {(): 1}
    assert standby.metrics()["conveyor_operator_leader"] == {(): 0}
    eventually(lambda: reconciles(leader, "success") >= 1)  # counted once the reconcile has written the status
    assert reconciles(standby, "success") == 0

    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(10)
    killed_at = time.monotonic()
    apply_workflow(api, namespace, "after-failover")
    eventually(lambda: has_deployments(api, namespace, "after-failover"), timeout=TAKEOVER_LIMIT + 5)
    took = time.monotonic() - killed_at
    print(f"standby reconciled {took:.1f}s after the leader's SIGKILL (lease {LEASE_SECONDS}s)")
    assert took <= TAKEOVER_LIMIT
    assert holder(api, namespace, lease) == standby.name
    assert standby.process.poll() is None
    assert standby.metrics()["conveyor_operator_leader"] == {(): 1}
    eventually(lambda: reconciles(standby, "success") >= 1)


RELEASE_TEST_LEASE_SECONDS = 30


@pytest.mark.parametrize("pair", [RELEASE_TEST_LEASE_SECONDS], indirect=True)
def test_a_sigtermed_leader_exits_cleanly_and_releases_the_lease(
    api: client.ApiClient, namespace: str, kubeconfig: str, pair: tuple[Operator, Operator, str]
) -> None:
    first, second, lease = pair
    leader_name = eventually(lambda: holder(api, namespace, lease), timeout=30)
    leader, standby = (first, second) if leader_name == first.name else (second, first)
    eventually(leader.healthy, timeout=15)
    leader.process.send_signal(signal.SIGTERM)
    assert leader.process.wait(30) == 0, leader.output()
    # Released, not expired: the standby holds it well before a lease duration would have passed.
    started = time.monotonic()
    eventually(lambda: holder(api, namespace, lease) == standby.name, timeout=RELEASE_TEST_LEASE_SECONDS)
    assert time.monotonic() - started < RELEASE_TEST_LEASE_SECONDS / 2
    # A standby asked to stop while waiting exits cleanly too.
    standby_wait = Operator("operator-c", namespace, lease, kubeconfig, RELEASE_TEST_LEASE_SECONDS)
    try:
        eventually(standby_wait.healthy, timeout=15)
        standby_wait.process.send_signal(signal.SIGTERM)
        assert standby_wait.process.wait(15) == 0
    finally:
        standby_wait.stop()


def test_bad_arguments_name_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    from conveyor_operator._main import main

    for argv, field in [
        (["-n", "x", "--liveness", "http://127.0.0.1/healthz"], "--liveness"),
        (["-n", "x", "--lease-duration", "0"], "--lease-duration"),
        (["-n", "x", "--unreachable-timeout", "0"], "--unreachable-timeout"),
        (
            ["-n", "x", "--leader-election-namespace", "Not_A_Namespace", "--liveness", "http://127.0.0.1:0/"],
            "namespace",
        ),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert field in capsys.readouterr().err


# lead(), in-process ------------------------------------------------------------------------------------------

LEADER_LOG = "conveyor_operator.leader"
UNREACHABLE = "kopf has had no answer from the API server for 60s"


# Its checks read Leases through the blocking client while `lead` runs in the loop: each look goes on a thread.
_until = functools.partial(until, timeout=30, interval=0.1, in_thread=True)


def _leader_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LEADER_LOG]


@pytest.fixture
def leader_env(kubeconfig: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> str:
    """lead()'s Lease scheduler reads $KUBECONFIG; a fresh Lease name; the leader's INFO lines captured."""
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    caplog.set_level(logging.INFO, logger=LEADER_LOG)
    return f"leader-{uuid.uuid4().hex[:6]}"


class Kopf:
    """A stand-in for kopf: runs until asked to stop (or forever, if it ignores that), saying what happened."""

    def __init__(self, stops: bool = True) -> None:
        self.stops = stops
        self.running = asyncio.Event()
        self.stopped = False
        self.cancelled = False

    async def __call__(self, stop: asyncio.Event) -> None:
        self.running.set()
        try:
            await (stop.wait() if self.stops else asyncio.Event().wait())
            self.stopped = True
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_a_leader_that_cannot_reach_the_api_server_steps_back_and_the_standby_leads_at_once(
    api: client.ApiClient, namespace: str, leader_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    lease, duration = leader_env, timedelta(seconds=30)  # long: the standby can only lead this soon on a release
    unfit = asyncio.Event()
    states: list[str] = []

    async def step_back() -> str:
        await unfit.wait()
        return UNREACHABLE

    first, second = Kopf(), Kopf()
    leading = asyncio.ensure_future(
        lead(
            first,
            lease=lease,
            namespace=namespace,
            lease_duration=duration,
            identity="op-a",
            on_state=states.append,
            step_back=step_back,
        )
    )
    await asyncio.wait_for(first.running.wait(), 30)
    standby = asyncio.ensure_future(
        lead(second, lease=lease, namespace=namespace, lease_duration=duration, identity="op-b")
    )
    try:
        await _until(
            lambda: (
                f"standby: Lease {namespace}/{lease} is held by op-a; waiting to lead as op-b" in _leader_lines(caplog)
            )
        )
        unfit.set()
        stepped_at = time.monotonic()
        with pytest.raises(SteppedBack, match="no answer from the API server"):
            await asyncio.wait_for(leading, 30)
        assert first.stopped and not first.cancelled  # asked to stop, as on a clean stop
        assert states == [f"standby: waiting for Lease {namespace}/{lease}", "leading", f"stepping back: {UNREACHABLE}"]
        await asyncio.wait_for(second.running.wait(), 10)
        assert time.monotonic() - stepped_at < 5  # released, not expired
        assert holder(api, namespace, lease) == "op-b"
    finally:
        standby.cancel()
        await asyncio.gather(standby, return_exceptions=True)
    assert second.cancelled
    lines = _leader_lines(caplog)
    assert f"no longer leading: cancelled; releasing Lease {namespace}/{lease}" in lines
    assert f"leading as op-a (Lease {namespace}/{lease})" in lines
    assert f"no longer leading: stepped back ({UNREACHABLE}); releasing Lease {namespace}/{lease}" in lines
    assert f"leading as op-b (Lease {namespace}/{lease})" in lines


async def test_a_leader_whose_kopf_does_not_stop_is_cancelled_after_a_lease_duration(
    api: client.ApiClient, namespace: str, leader_env: str
) -> None:
    lease, duration = leader_env, timedelta(seconds=2)
    stuck = Kopf(stops=False)

    async def step_back() -> str:
        await stuck.running.wait()
        return UNREACHABLE

    started = time.monotonic()
    with pytest.raises(SteppedBack):
        await asyncio.wait_for(
            lead(
                stuck, lease=lease, namespace=namespace, lease_duration=duration, identity="op-a", step_back=step_back
            ),
            30,
        )
    assert stuck.cancelled
    assert 2 <= time.monotonic() - started < 10
    assert holder(api, namespace, lease) is None  # released all the same


async def test_a_leader_whose_lease_is_taken_stops_at_once(
    api: client.ApiClient, namespace: str, leader_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    lease, duration = leader_env, timedelta(seconds=3)
    first = Kopf()
    leading = asyncio.ensure_future(
        lead(first, lease=lease, namespace=namespace, lease_duration=duration, identity="op-a")
    )
    await asyncio.wait_for(first.running.wait(), 30)
    coordination = client.CoordinationV1Api(api)
    record = coordination.read_namespaced_lease(lease, namespace)
    assert record.spec is not None
    record.spec.holder_identity = "someone-else"
    coordination.replace_namespaced_lease(lease, namespace, record)
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(leading, 10)
    assert first.cancelled and not first.stopped
    assert f"no longer leading: lost Lease {namespace}/{lease}; stopped acting at once" in _leader_lines(caplog)


async def test_a_standby_says_once_whom_it_waits_for_and_each_replica_when_it_leads_and_stops(
    api: client.ApiClient, namespace: str, leader_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    lease, duration = leader_env, timedelta(seconds=6)  # a poll a second
    first, second = Kopf(), Kopf()
    done = asyncio.Event()

    async def until_done(stop: asyncio.Event) -> None:
        first.running.set()
        await done.wait()

    leading = asyncio.ensure_future(
        lead(until_done, lease=lease, namespace=namespace, lease_duration=duration, identity="op-a")
    )
    await asyncio.wait_for(first.running.wait(), 30)
    standby = asyncio.ensure_future(
        lead(second, lease=lease, namespace=namespace, lease_duration=duration, identity="op-b")
    )
    try:
        await asyncio.sleep(4)  # several polls of a Lease renewed meanwhile
        waiting = f"standby: Lease {namespace}/{lease} is held by op-a; waiting to lead as op-b"
        assert _leader_lines(caplog) == [f"leading as op-a (Lease {namespace}/{lease})", waiting]
        done.set()  # op-a stops cleanly (as on SIGTERM): it releases the Lease
        await asyncio.wait_for(leading, 10)
        await asyncio.wait_for(second.running.wait(), 10)
    finally:
        standby.cancel()
        await asyncio.gather(standby, return_exceptions=True)
    assert _leader_lines(caplog)[:4] == [
        f"leading as op-a (Lease {namespace}/{lease})",
        waiting,
        f"no longer leading: stopped; releasing Lease {namespace}/{lease}",
        f"leading as op-b (Lease {namespace}/{lease})",
    ]


# The Lease's owner -------------------------------------------------------------------------------------------


def make_deployment(api: client.ApiClient, namespace: str) -> tuple[str, str]:
    """A Deployment of no replicas standing in for the operator's own: (name, uid)."""
    name = f"operator-{uuid.uuid4().hex[:6]}"
    labels = {"app": name}
    made = client.AppsV1Api(api).create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1DeploymentSpec(
                replicas=0,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="operator", image="example.com/c:0")]),
                ),
            ),
        ),
    )
    assert made.metadata is not None and made.metadata.uid
    return name, made.metadata.uid


def lease_owners(api: client.ApiClient, namespace: str, lease: str) -> list[tuple[str, str, str, str]] | None:
    """The Lease's owner references as (apiVersion, kind, name, uid), or None if there is no Lease."""
    found = read_lease(api, namespace, lease)
    if found is None:
        return None
    assert found.metadata is not None
    return [(r.api_version, r.kind, r.name, r.uid) for r in found.metadata.owner_references or []]


def lease_uid(api: client.ApiClient, namespace: str, lease: str) -> str | None:
    found = read_lease(api, namespace, lease)
    if found is None:
        return None
    assert found.metadata is not None
    return found.metadata.uid


async def test_the_leader_lease_is_owned_by_the_operators_deployment_and_goes_with_it(
    api: client.ApiClient, namespace: str, leader_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    lease, duration = leader_env, timedelta(seconds=3)
    name, uid = make_deployment(api, namespace)
    first = Kopf()
    leading = asyncio.ensure_future(
        lead(first, lease=lease, namespace=namespace, lease_duration=duration, identity="op-a", owner=name)
    )
    try:
        await asyncio.wait_for(first.running.wait(), 30)
        assert lease_owners(api, namespace, lease) == [("apps/v1", "Deployment", name, uid)]
        assert (
            f"the Lease {namespace}/{lease} is owned by Deployment {namespace}/{name} (uid {uid}): it goes with it"
            in (_leader_lines(caplog))
        )
        created = lease_uid(api, namespace, lease)
        client.AppsV1Api(api).delete_namespaced_deployment(name, namespace)
        # The garbage collector deletes it (the leader's next renewal makes it anew, owned the same: deleted again).
        await _until(lambda: lease_uid(api, namespace, lease) != created)
    finally:
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
    # Once nobody writes it (the release was its last write), it is gone for good.
    await _until(lambda: lease_uid(api, namespace, lease) is None)
    await asyncio.sleep(2)
    assert lease_uid(api, namespace, lease) is None


async def test_a_missing_deployment_costs_a_warning_and_the_owner_only(
    api: client.ApiClient, namespace: str, leader_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    lease, duration = leader_env, timedelta(seconds=3)
    first = Kopf()
    leading = asyncio.ensure_future(
        lead(first, lease=lease, namespace=namespace, lease_duration=duration, identity="op-a", owner="not-there")
    )
    try:
        await asyncio.wait_for(first.running.wait(), 30)
        assert lease_owners(api, namespace, lease) == []
    finally:
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
    warnings = [r.getMessage() for r in caplog.records if r.name == LEADER_LOG and r.levelno == logging.WARNING]
    assert warnings == [
        f"the Lease {namespace}/{lease} gets no owner, so it outlives the operator's Deployment (an uninstall leaves"
        f" it behind): Deployment {namespace}/not-there cannot be read (HTTP 404 Not Found)"
    ]


async def test_a_deployment_it_may_not_read_costs_a_warning_and_the_owner_only(
    api: client.ApiClient,
    namespace: str,
    kubeconfig: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name, _ = make_deployment(api, namespace)
    core = client.CoreV1Api(api)
    account = f"nobody-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    issued = core.create_namespaced_service_account_token(
        account, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(expiration_seconds=600))
    )
    assert issued.status is not None
    document = yaml.safe_load(Path(kubeconfig).read_text())
    document["users"] = [{"name": "nobody", "user": {"token": issued.status.token}}]
    for context in document["contexts"]:
        context["context"]["user"] = "nobody"
    limited = tmp_path / "kubeconfig"
    limited.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("KUBECONFIG", str(limited))
    caplog.set_level(logging.INFO, logger=LEADER_LOG)
    assert await deployment_owner(name, namespace, lease="the-lease") is None
    (warning,) = [r.getMessage() for r in caplog.records if r.name == LEADER_LOG]
    assert f"Deployment {namespace}/{name} cannot be read (HTTP 403 Forbidden)" in warning


async def test_an_api_server_that_does_not_answer_is_named(
    kubeconfig: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in document["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:9"
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("KUBECONFIG", str(broken))
    with pytest.raises(ServiceUnavailable) as info:
        await deployment_owner("op", "ns", lease="the-lease", patience=0.5)
    assert "127.0.0.1:9" in str(info.value) and "read Deployment ns/op" in str(info.value)


def test_two_operators_stopped_at_once_leave_no_lease_behind_their_deployment(
    api: client.ApiClient, namespace: str, kubeconfig: str, crds: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An uninstall: the Deployment is deleted and both replicas get SIGTERM at once; the standby may take the
    Lease the leader releases, and write it on its own way out. The Lease is gone all the same."""
    name, uid = make_deployment(api, namespace)
    lease = f"leader-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("CONVEYOR_OPERATOR_DEPLOYMENT", name)  # as the chart sets it; the processes inherit it
    operators = [Operator(f"operator-{x}", namespace, lease, kubeconfig) for x in ("a", "b")]
    try:
        eventually(lambda: holder(api, namespace, lease), timeout=30)
        assert lease_owners(api, namespace, lease) == [("apps/v1", "Deployment", name, uid)]
        eventually(lambda: all(each.healthy() for each in operators), timeout=15)
        client.AppsV1Api(api).delete_namespaced_deployment(name, namespace)
        for each in operators:
            each.process.send_signal(signal.SIGTERM)
        for each in operators:
            each.process.wait(30)
        eventually(lambda: lease_uid(api, namespace, lease) is None, timeout=30)
        time.sleep(2)
        assert lease_uid(api, namespace, lease) is None
    finally:
        for each in operators:
            each.stop()
