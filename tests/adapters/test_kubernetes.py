"""The Lease role scheduler on a real API server: the conformance suites, plus what only Leases have: names for
every role the engine makes, takeover after the holder is killed with SIGKILL, a holder cut off from the API
server stopping before anyone else starts, a Lease taken from under its holder, release on a clean stop, RBAC
refusals and unreachable servers named clearly, and an owner on the Lease (created or taken), whose deletion
deletes the Lease through the garbage collector, a Lease re-created after it too."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies
from kubernetes import client

from conveyor._engine.roles import schedule_role, step_group, step_role
from conveyor.adapters.base import RoleScheduler
from conveyor.adapters.kubernetes import LeaseRoleScheduler
from conveyor.adapters.kubernetes._names import is_valid_name, lease_name
from conveyor.adapters.memory import MemoryRecordStore, MemoryStreamer, MemoryTimeoutStore
from conveyor.errors import AccessDenied, InvalidInput, ServiceUnavailable
from conveyor.testing.conformance import Adapters, RoleSchedulerSuite, WorkflowSuite
from tests.adapters.tcp_proxy import TcpProxy
from tests.helpers import ROOT, unique, until

SECONDS = 3
DURATION = timedelta(seconds=SECONDS)
NAMESPACE = "default"


def scheduler(kubeconfig: str, **kwargs: Any) -> LeaseRoleScheduler:
    kwargs.setdefault("lease_duration", DURATION)
    return LeaseRoleScheduler(NAMESPACE, kubeconfig=kubeconfig, **kwargs)


@contextlib.asynccontextmanager
async def opened(*schedulers: LeaseRoleScheduler) -> AsyncIterator[None]:
    for each in schedulers:
        await each.open()
    try:
        yield
    finally:
        for each in schedulers:
            await each.close()


def read_lease(api: client.ApiClient, role: str) -> Any:
    return client.CoordinationV1Api(api).read_namespaced_lease(lease_name(role), NAMESPACE)


class TestLeaseRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def role_schedulers(self, kubeconfig: str) -> AsyncIterator[Callable[[int], list[RoleScheduler]]]:
        # Five processes are the most any case of the suite asks for; each is opened before it is handed out.
        pool = [scheduler(kubeconfig) for _ in range(5)]
        async with opened(*pool):
            yield lambda n: list(pool[:n])


class TestWorkflowOnLeases(WorkflowSuite):
    @pytest.fixture
    def adapters(self, kubeconfig: str) -> Callable[[], Adapters]:
        shared = Adapters(MemoryStreamer(), MemoryRecordStore(), scheduler(kubeconfig), MemoryTimeoutStore())
        return lambda: shared


# Names -------------------------------------------------------------------------------------------------------


def test_a_valid_role_is_its_own_lease_name() -> None:
    role = step_role("order-processing", 1, 2, 5)
    assert lease_name(role) == role == "order-processing-1-consumer-2-of-5"


def test_every_role_gets_a_valid_unique_name() -> None:
    roles = [
        schedule_role("billing", "acct 1", "0 2 * * *"),
        schedule_role("billing", "acct 1", "0 3 * * *"),
        schedule_role("billing", "acct_1", "@every 1h30m"),
        "Order_Processing-1-consumer-1-of-1",
        "order_processing-1-consumer-1-of-1",
        "x" * 400,
        "x" * 401,
        "***",
        "-leading.and.trailing-",
    ]
    names = [lease_name(role) for role in roles]
    assert all(is_valid_name(name) for name in names), names
    assert len(set(names)) == len(roles)
    assert names[0].startswith("billing-acct_1-scheduler".replace("_", "-"))


def test_bad_configuration_names_the_field(tmp_path: Path) -> None:
    for kwargs, field in [
        ({"namespace": "Not_A_Namespace"}, "namespace"),
        ({"lease_duration": timedelta(milliseconds=500)}, "lease_duration"),
        ({"lease_duration": 15}, "lease_duration"),
        ({"identity": " "}, "identity"),
        ({"owner": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}}, "owner"),
        ({"owner": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": ""}}, "owner"),
        ({"owner": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u", "controller": "yes"}}, "owner"),
        ({"owner": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u", "extra": 1}}, "owner"),
        ({"owner": "x"}, "owner"),
    ]:
        with pytest.raises(InvalidInput) as info:
            LeaseRoleScheduler(**kwargs)  # type: ignore[arg-type]
        assert info.value.field == field


async def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(InvalidInput) as info:
        await LeaseRoleScheduler(kubeconfig=str(missing)).open()
    assert info.value.field == "kubeconfig" and str(missing) in str(info.value)


async def test_an_unreachable_api_server_is_named(kubeconfig: str, tmp_path: Path) -> None:
    document = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in document["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:9"
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(document))
    with pytest.raises(ServiceUnavailable) as info:
        await LeaseRoleScheduler(kubeconfig=str(broken)).open()
    assert info.value.service == "Kubernetes API server" and "127.0.0.1:9" in str(info.value)


# Holding -----------------------------------------------------------------------------------------------------


async def test_the_lease_names_its_holder_and_keeps_the_exact_role(kubeconfig: str, api: client.ApiClient) -> None:
    holder = scheduler(kubeconfig, identity=unique("test-me"))
    role = schedule_role("billing", unique("test-acct"), "0 2 * * *")
    async with opened(holder), holder.hold(role) as lease:
        assert lease.held
        record = read_lease(api, role)
        assert record.spec.holder_identity == holder.identity
        assert record.spec.lease_duration_seconds == SECONDS
        assert record.metadata.annotations["conveyor.dev/role"] == role
        assert record.metadata.labels["app.kubernetes.io/managed-by"] == "conveyor"
        first_renewal = record.spec.renew_time
        await asyncio.sleep(SECONDS)  # several renewals: the role stays held
        assert lease.held
        assert read_lease(api, role).spec.renew_time > first_renewal


async def test_a_clean_stop_releases_the_lease_at_once(kubeconfig: str, api: client.ApiClient) -> None:
    # A long lease: the waiter can only get the role this fast if it was released.
    first, second = scheduler(kubeconfig, lease_duration=timedelta(seconds=60)), scheduler(kubeconfig)
    role = unique("test-release")
    async with opened(first, second):
        async with first.hold(role):
            pass
        assert read_lease(api, role).spec.holder_identity is None
        started = time.monotonic()
        async with asyncio.timeout(10), second.hold(role) as lease:
            assert lease.held
        assert time.monotonic() - started < 5


HOLDER = """
import asyncio, sys
from datetime import timedelta
from conveyor.adapters.kubernetes import LeaseRoleScheduler

async def main(kubeconfig, role):
    roles = LeaseRoleScheduler("default", kubeconfig=kubeconfig, lease_duration=timedelta(seconds={seconds}))
    await roles.open()
    async with roles.hold(role):
        print("held", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_waiter_takes_over_within_the_lease_duration_after_sigkill(
    kubeconfig: str, api: client.ApiClient
) -> None:
    role = unique("test-killed")
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER.replace("{seconds}", str(SECONDS)), kubeconfig, role],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert await asyncio.to_thread(process.stdout.readline) == "held\n"
        waiter = scheduler(kubeconfig)
        async with opened(waiter):
            taking = asyncio.ensure_future(_hold_and_time(waiter, role))
            await asyncio.sleep(1.2)  # the waiter is waiting on a live holder
            assert not taking.done()
            process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            took = await asyncio.wait_for(taking, 4 * SECONDS) - killed_at
    finally:
        process.kill()
        process.wait()
    print(f"takeover {took:.2f}s after SIGKILL (lease duration {SECONDS}s)")
    assert took <= SECONDS + 0.5
    record = read_lease(api, role)
    assert record.spec.lease_transitions == 1


async def _hold_and_time(roles: LeaseRoleScheduler, role: str) -> float:
    async with roles.hold(role) as lease:
        assert lease.held
        return time.monotonic()


async def test_a_holder_cut_off_from_the_api_server_stops_before_anyone_else_starts(kubeconfig: str) -> None:
    async with TcpProxy.to_kubeconfig_server(kubeconfig) as proxy:
        cut_off = scheduler(str(proxy.kubeconfig))
        other = scheduler(kubeconfig)
        role = unique("test-partition")
        async with opened(cut_off, other), cut_off.hold(role) as lease:
            taking = asyncio.ensure_future(_hold_and_time(other, role))
            await asyncio.sleep(1)
            proxy.cut()
            cut_at = time.monotonic()
            await asyncio.wait_for(lease.wait_lost(), SECONDS)
            lost_at = time.monotonic()
            assert not lease.held
            taken_at = await asyncio.wait_for(taking, 4 * SECONDS)
    print(f"cut off: stopped after {lost_at - cut_at:.2f}s, taken over after {taken_at - cut_at:.2f}s")
    assert lost_at - cut_at <= SECONDS * 2 / 3 + 0.3
    assert taken_at > lost_at


async def test_a_lease_taken_from_its_holder_is_lost_at_the_next_renewal(
    kubeconfig: str, api: client.ApiClient
) -> None:
    holder = scheduler(kubeconfig)
    role = unique("test-stolen")
    async with opened(holder), holder.hold(role) as lease:
        record = read_lease(api, role)
        record.spec.holder_identity = "someone-else"
        record.spec.renew_time = datetime.now(UTC).replace(microsecond=1)
        client.CoordinationV1Api(api).replace_namespaced_lease(record.metadata.name, NAMESPACE, record)
        await asyncio.wait_for(lease.wait_lost(), SECONDS)
        assert not lease.held


async def test_every_change_of_holder_counts_as_a_transition_clean_handovers_included(
    kubeconfig: str, api: client.ApiClient
) -> None:
    # client-go counts every change of holder; a released Lease names nobody, and taking it is a change too.
    first, second = (
        scheduler(kubeconfig, identity=unique("test-first")),
        scheduler(kubeconfig, identity=unique("test-second")),
    )
    role = unique("test-transitions")
    async with opened(first, second):
        async with first.hold(role):
            assert read_lease(api, role).spec.lease_transitions == 0  # created: nobody held it before
            await asyncio.sleep(SECONDS / 2)  # renewals are no transitions
            assert read_lease(api, role).spec.lease_transitions == 0
        released = read_lease(api, role).spec
        assert released.holder_identity is None and released.lease_transitions == 0
        async with second.hold(role):
            assert read_lease(api, role).spec.lease_transitions == 1
        async with first.hold(role):
            record = read_lease(api, role).spec
            assert (record.holder_identity, record.lease_transitions) == (first.identity, 2)


async def test_a_waiter_is_told_whom_it_waits_for_once_per_holder(kubeconfig: str) -> None:
    told: list[tuple[str, str]] = []
    holder, waiter = scheduler(kubeconfig), scheduler(kubeconfig, on_waiting=lambda *seen: told.append(seen))
    role = unique("test-waiting")
    async with opened(holder, waiter):
        async with holder.hold(role):
            taking = asyncio.ensure_future(_hold_and_time(waiter, role))
            await asyncio.sleep(SECONDS)  # several polls of a record renewed meanwhile
            assert told == [(role, holder.identity)]
        await asyncio.wait_for(taking, SECONDS)
    assert told == [(role, holder.identity)]


async def test_rbac_refusal_is_named(kubeconfig: str, api: client.ApiClient, tmp_path: Path) -> None:
    core = client.CoreV1Api(api)
    account = unique("test-nobody")
    core.create_namespaced_service_account(
        NAMESPACE, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    try:
        issued = core.create_namespaced_service_account_token(
            account,
            NAMESPACE,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(expiration_seconds=600)),
        )
        assert issued.status is not None
        token = issued.status.token
        document = yaml.safe_load(Path(kubeconfig).read_text())
        document["users"] = [{"name": "nobody", "user": {"token": token}}]
        for context in document["contexts"]:
            context["context"]["user"] = "nobody"
        limited = tmp_path / "kubeconfig"
        limited.write_text(yaml.safe_dump(document))
        roles = scheduler(str(limited))
        async with opened(roles):
            with pytest.raises(AccessDenied) as info:
                async with asyncio.timeout(10), roles.hold(unique("test-forbidden")):
                    pass
        assert "Lease" in str(info.value) and "default" in str(info.value)
    finally:
        core.delete_namespaced_service_account(account, NAMESPACE)


# Owners -------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def config_map(api: client.ApiClient) -> Iterator[dict[str, str]]:
    """A ConfigMap in NAMESPACE, as an owner reference (any namespaced object can own a Lease)."""
    core = client.CoreV1Api(api)
    name = unique("test-owner")
    made = core.create_namespaced_config_map(NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))
    assert made.metadata is not None and made.metadata.uid
    try:
        yield {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": made.metadata.uid}
    finally:
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_config_map(name, NAMESPACE)


def owners(api: client.ApiClient, role: str) -> list[dict[str, str]]:
    refs = read_lease(api, role).metadata.owner_references or []
    return [{"apiVersion": r.api_version, "kind": r.kind, "name": r.name, "uid": r.uid} for r in refs]


async def test_a_created_lease_carries_the_owner_through_renewals_and_the_release(
    kubeconfig: str, api: client.ApiClient
) -> None:
    with config_map(api) as owner:
        holder = scheduler(kubeconfig, owner=owner)
        role = unique("test-owned")
        async with opened(holder):
            async with holder.hold(role):
                assert owners(api, role) == [owner]
                first = read_lease(api, role).spec.renew_time
                await asyncio.sleep(SECONDS)  # several renewals, each a whole new record: the owner stays
                assert read_lease(api, role).spec.renew_time > first
                assert owners(api, role) == [owner]
            assert read_lease(api, role).spec.holder_identity is None
            assert owners(api, role) == [owner]


async def test_a_taken_lease_gets_the_owner_and_keeps_the_others(kubeconfig: str, api: client.ApiClient) -> None:
    with config_map(api) as owner, config_map(api) as theirs, config_map(api) as earlier:
        role = unique("test-taken")
        plain = scheduler(kubeconfig)
        async with opened(plain):
            async with plain.hold(role):
                assert read_lease(api, role).metadata.owner_references is None  # no owner unless given one
            # Someone else's owner, and our owner's earlier life (same object, another uid), put on the Lease.
            previous = {**owner, "uid": earlier["uid"]}
            record = read_lease(api, role)
            record.metadata.owner_references = [_reference(theirs), _reference(previous)]
            client.CoordinationV1Api(api).replace_namespaced_lease(record.metadata.name, NAMESPACE, record)
        owned = scheduler(kubeconfig, owner=owner)
        async with opened(owned), owned.hold(role):
            assert read_lease(api, role).spec.holder_identity == owned.identity
            assert owners(api, role) == [theirs, owner]
        # A scheduler without an owner keeps the Lease's owners too (a write replaces the whole object).
        async with opened(plain), plain.hold(role):
            assert owners(api, role) == [theirs, owner]


def _reference(owner: dict[str, str]) -> client.V1OwnerReference:
    return client.V1OwnerReference(
        api_version=owner["apiVersion"], kind=owner["kind"], name=owner["name"], uid=owner["uid"]
    )


async def test_the_lease_goes_with_its_owner_and_so_does_one_re_created_after_it(
    kubeconfig: str, api: client.ApiClient
) -> None:
    role = unique("test-collected")
    with config_map(api) as owner:
        holder = scheduler(kubeconfig, owner=owner)
        async with opened(holder):
            async with holder.hold(role) as lease:
                first = lease_uid(api, role)
                client.CoreV1Api(api).delete_namespaced_config_map(owner["name"], NAMESPACE)
                # The garbage collector deletes the Lease. (A renewal writing to a deleted Lease makes it anew, as an
                # update may for Leases, with the same owner: collected again, as long as anyone writes it.)
                await _until(lambda: lease_uid(api, role) != first)
                assert lease.held
            await _until(lambda: lease_uid(api, role) is None)
            # A process still on its way out takes the role again, creating the Lease for an owner that is gone:
            # it is deleted all the same, and stays deleted once nobody writes it.
            async with holder.hold(role):
                pass
            await _until(lambda: lease_uid(api, role) is None)
            await asyncio.sleep(SECONDS)
            assert lease_uid(api, role) is None


def lease_uid(api: client.ApiClient, role: str) -> str | None:
    try:
        return str(read_lease(api, role).metadata.uid)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


# Shard fences ------------------------------------------------------------------------------------------------


def test_bad_fence_arguments_name_the_field() -> None:
    roles = LeaseRoleScheduler()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"role": "", "group": "g", "shards": 2}, "role"),
        ({"role": "r", "group": "", "shards": 2}, "group"),
        ({"role": "r", "group": 5, "shards": 2}, "group"),
        ({"role": "r", "group": "g", "shards": 0}, "shards"),
        ({"role": "r", "group": "g", "shards": True}, "shards"),
        ({"role": "r", "group": "g", "shards": "2"}, "shards"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as info:
            roles.fence(kwargs.pop("role"), **kwargs)
        assert info.value.field == field
        assert roles.fenced("r") is None


def _shards(workflow: str, count: int) -> list[str]:
    return [step_role(workflow, 1, k, count) for k in range(1, count + 1)]


def _fenced(roles: LeaseRoleScheduler, workflow: str, count: int) -> list[str]:
    for role in _shards(workflow, count):
        roles.fence(role, group=step_group(workflow, 1), shards=count)
    return _shards(workflow, count)


async def test_shards_of_a_new_count_wait_until_the_old_counts_leases_are_released(
    kubeconfig: str, api: client.ApiClient
) -> None:
    workflow = unique("test-fence")
    old, new = scheduler(kubeconfig), scheduler(kubeconfig)
    old_roles, new_roles = _fenced(old, workflow, 2), _fenced(new, workflow, 3)
    # Before a first look at the other counts' Leases, a fenced role is not free to take either.
    assert {new.fenced(role) for role in new_roles} == {"checking for shards of another count"}
    async with opened(old, new), contextlib.AsyncExitStack() as holding:
        for role in old_roles:
            await holding.enter_async_context(old.hold(role))
        record = read_lease(api, old_roles[0])
        assert record.metadata.labels["conveyor.dev/shards"] == "2"
        assert record.metadata.annotations["conveyor.dev/shard-group"] == step_group(workflow, 1)

        taking = [asyncio.ensure_future(_hold_until(new, role, asyncio.Event())) for role in new_roles]
        await _until(lambda: all(new.fenced(role) == "waiting for shards of n=2 to stop" for role in new_roles))
        await asyncio.sleep(SECONDS)  # longer than a lease: the old count's Leases are renewed, so still waiting
        assert not any(t.done() for t in taking)
        for role in new_roles:
            assert not _held_by(api, role, new.identity)

        await holding.aclose()  # the old count stops cleanly: its Leases are released
        await _until(lambda: all(_held_by(api, role, new.identity) for role in new_roles))
        assert all(new.fenced(role) is None for role in new_roles)
        for t in taking:
            t.cancel()
        await asyncio.gather(*taking, return_exceptions=True)


async def test_the_fence_works_both_ways_and_ignores_other_steps_and_the_same_count(
    kubeconfig: str, api: client.ApiClient
) -> None:
    workflow = unique("test-both")
    new, old, other = scheduler(kubeconfig), scheduler(kubeconfig), scheduler(kubeconfig)
    (new_role,) = _fenced(new, workflow, 1)
    old_roles = _fenced(old, workflow, 2)
    # Another step of the same workflow with another count, and a standby of the same count: neither fences.
    other_role = step_role(workflow, 2, 1, 2)
    other.fence(other_role, group=step_group(workflow, 2), shards=2)
    async with opened(new, old, other), new.hold(new_role), other.hold(other_role):
        waiting = asyncio.ensure_future(_hold_until(old, old_roles[1], asyncio.Event()))
        await _until(lambda: old.fenced(old_roles[1]) == "waiting for shards of n=1 to stop")
        assert not waiting.done()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert old.fenced(old_roles[1]) is None
    # It waited before writing anything: its Lease was never even created.
    with pytest.raises(client.ApiException) as info:
        read_lease(api, old_roles[1])
    assert info.value.status == 404


async def _hold_until(roles: LeaseRoleScheduler, role: str, stop: asyncio.Event) -> None:
    async with roles.hold(role):
        await stop.wait()


_until = functools.partial(until, timeout=30, interval=0.1)


def _held_by(api: client.ApiClient, role: str, identity: str) -> bool:
    try:
        return bool(read_lease(api, role).spec.holder_identity == identity)
    except client.ApiException as e:
        if e.status == 404:
            return False
        raise


async def test_two_counts_started_together_never_hold_at_once(kubeconfig: str) -> None:
    # Both look, find nothing, and write at about the same time: the check after the write makes at least one of
    # them step back. Whoever goes first, the other follows only after it stopped.
    for _ in range(4):
        await _race(kubeconfig)


async def _race(kubeconfig: str) -> None:
    workflow = unique("test-race")
    one, two = scheduler(kubeconfig), scheduler(kubeconfig)
    (one_role,) = _fenced(one, workflow, 1)
    two_role = _fenced(two, workflow, 2)[0]
    active: list[int] = []
    overlaps: list[list[int]] = []
    stops = {1: asyncio.Event(), 2: asyncio.Event()}

    async def hold(roles: LeaseRoleScheduler, role: str, count: int) -> None:
        async with roles.hold(role):
            active.append(count)
            if len(active) > 1:
                overlaps.append(list(active))
            await stops[count].wait()
            active.remove(count)

    async with opened(one, two):
        tasks = [asyncio.ensure_future(hold(one, one_role, 1)), asyncio.ensure_future(hold(two, two_role, 2))]
        await _until(lambda: len(active) == 1)
        first = active[0]
        await asyncio.sleep(1)
        assert active == [first] and not overlaps
        stops[first].set()
        await _until(lambda: active == [3 - first])
        stops[3 - first].set()
        await asyncio.gather(*tasks)
    assert not overlaps
