"""LeaseRoleScheduler: each role is a `coordination.k8s.io/v1` Lease; whoever the Lease names holds the role.

The rules, as Kubernetes' own leader election keeps them (client-go), with one refinement:
- Every write is a compare-and-swap on the Lease's resourceVersion, so two processes can never both take it.
- The holder renews every `lease_duration / 6`. It counts itself the holder only until `2/3 lease_duration`
  after the start of its last successful renewal: past that, `held` is False and `wait_lost()` returns at once,
  whether or not the API server answered, so the engine stops acting on the role before anyone else may start.
- A waiter takes over a Lease whose record has not changed for `lease_duration`, measured on its own monotonic
  clock from when it first saw that record (so clock skew between machines cannot cut a holder short). The
  refinement: the record's age by the holder's clock, when it is small (at most `lease_duration / 6`), is
  credited, so a waiter that polled late still takes over about `lease_duration` after the last renewal, and the
  holder has given up at least `lease_duration / 6` before that, whatever the clocks say.
- A clean stop releases the Lease (holder cleared, duration 1 s, as client-go's ReleaseOnCancel does), so a
  waiter takes over within one poll instead of waiting for expiry.

Owners (`owner`, off by default): a Lease made at run time is unknown to whoever installed its users (Helm), so
nothing would delete it with them. Given an owner reference (the operator gives its own Deployment), every write
of the Lease carries it, so Kubernetes' garbage collector deletes the Lease once the owner is gone, and deletes one
re-created afterwards by a process still on its way out just the same, since its owner no longer exists. A Lease
taken without it gets it; the owner references others put on the Lease are kept (a write replaces the whole
object), except one naming the same object under another uid: an earlier life of the owner.

Shard fences (`fence`): the roles of one step's shards are named with their shard count (k of n), so when the
count changes the old shards' Leases and the new shards' Leases are different objects and nothing in the rules
above stops both sets from running at once over overlapping partitions. A role given a fence is held only while
no Lease of its group (the step) with a different shard count is held: the Leases of a fenced role carry the
group (a hashed label to select them by, the exact group in an annotation) and the count (a label). Holding is
write-then-check: take the own Lease, then list the group; if a Lease of another count is held and not expired
(expiry judged as above, on this process's clock from when its record was first seen), give the own Lease back
and wait until there is none, then try again. Since every contender writes before it reads, of two contenders
with different counts at least one sees the other and steps back: two counts never both pass. The fence lives
here, in the adapter, configured by the caller (the worker knows which roles are shards of which step), as the
optional `FencingRoleScheduler` capability (`fence`, `fenced`), so the engine and the base RoleScheduler protocol
stay free of Kubernetes and the memory scheduler (one process) needs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import random
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor._core.ports import RoleLease
from conveyor.adapters.kubernetes._client import Api, Conflict, NotFound, Transient, load_configuration
from conveyor.adapters.kubernetes._names import lease_name
from conveyor.errors import InvalidInput, ServiceUnavailable, WorkflowNotRunning

logger = logging.getLogger("conveyor.adapters.kubernetes")

ROLE_ANNOTATION = "conveyor.dev/role"
MANAGED_BY = {"app.kubernetes.io/managed-by": "conveyor"}
# A fenced role's Lease: its group hashed into a label value (any group fits; selected by the API server), the exact
# group in an annotation (a hash collision is never mistaken for the same step), and its shard count.
SHARD_GROUP_LABEL = "conveyor.dev/shard-group"
SHARD_GROUP_ANNOTATION = "conveyor.dev/shard-group"
SHARDS_LABEL = "conveyor.dev/shards"
CHECKING_FENCE = "checking for shards of another count"
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _now() -> datetime:
    return datetime.now(UTC)


def _is_owner_reference(owner: Any) -> bool:
    if not isinstance(owner, Mapping):
        return False
    required = ("apiVersion", "kind", "name", "uid")
    if not all(isinstance(owner.get(key), str) and owner[key].strip() for key in required):
        return False
    optional = ("controller", "blockOwnerDeletion")
    if not all(isinstance(owner.get(key, False), bool) for key in optional):
        return False
    return set(owner) <= {*required, *optional}


def _owner_dict(reference: Any) -> dict[str, Any]:
    """A V1OwnerReference read back from the server, as written."""
    written: dict[str, Any] = {
        "apiVersion": reference.api_version,
        "kind": reference.kind,
        "name": reference.name,
        "uid": reference.uid,
    }
    if reference.controller is not None:
        written["controller"] = reference.controller
    if reference.block_owner_deletion is not None:
        written["blockOwnerDeletion"] = reference.block_owner_deletion
    return written


def _micro_time(moment: datetime) -> str:
    # MicroTime must carry its fraction: the client's isoformat() drops it when it is zero, which the server refuses.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class _Fence:
    group: str
    shards: int

    @property
    def label(self) -> str:
        return hashlib.sha256(self.group.encode()).hexdigest()[:32]


@dataclass(slots=True)
class _Seen:
    """One Lease record as first seen here: it has expired once it is unchanged for its duration from then."""

    version: str | None
    at: float
    credit: float


class _HeldLease:
    """The RoleLease handed to the engine while a Lease is ours."""

    def __init__(self, role: str, name: str, record: Any, valid_until: float) -> None:
        self._role = role
        self.name = name
        self.record = record
        self.valid_until = valid_until
        self._lost = asyncio.Event()
        self.why_lost = ""

    @property
    def role(self) -> str:
        return self._role

    @property
    def held(self) -> bool:
        return not self._lost.is_set() and time.monotonic() < self.valid_until

    def lose(self, why: str, *, released: bool = False) -> None:
        if not self._lost.is_set():
            self.why_lost = why
            self._lost.set()
            if released:
                logger.info("role %s released (Lease %s)", self._role, self.name)
            else:
                logger.warning("role %s lost (Lease %s): %s", self._role, self.name, why)

    async def wait_lost(self) -> None:
        while not self._lost.is_set():
            left = self.valid_until - time.monotonic()
            if left <= 0:
                self.lose("the Lease could not be renewed in time")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), left)


class LeaseRoleScheduler:
    """Roles held through Kubernetes Leases in `namespace`.

    `kubeconfig`: a kubeconfig path (default: $KUBECONFIG, ~/.kube/config, or the pod's service account when run
    in a cluster). `lease_duration`: how long a crashed holder keeps its roles; whole seconds, at least 1.
    `identity`: the holder's name written on its Leases (default: host name, process id and a random suffix, so
    a restarted process is never mistaken for its previous life). `on_waiting(role, holder)`: called when a hold
    finds its Lease held by someone else, and again whenever that holder changes (not on every poll), so a caller
    can say whom it waits for; it must not raise. `owner`: an owner reference, as in an object's
    `metadata.ownerReferences` (`apiVersion`, `kind`, `name` and `uid`; `controller` and `blockOwnerDeletion`
    optional), of an object in `namespace`, put on every Lease this scheduler creates or takes, so that the garbage
    collector deletes the Lease with its owner (default: none).
    """

    def __init__(
        self,
        namespace: str = "default",
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        lease_duration: timedelta = timedelta(seconds=15),
        identity: str | None = None,
        request_timeout: float = 5.0,
        on_waiting: Callable[[str, str], None] | None = None,
        owner: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(namespace, str) or len(namespace) > 63 or not _NAMESPACE.match(namespace):
            raise InvalidInput("namespace", "a Kubernetes namespace name (lowercase RFC 1123 label)", namespace)
        if not isinstance(lease_duration, timedelta) or lease_duration < timedelta(seconds=1):
            raise InvalidInput("lease_duration", "a timedelta of at least 1 second", lease_duration)
        if identity is not None and (not isinstance(identity, str) or not identity.strip()):
            raise InvalidInput("identity", "a non-empty string", identity)
        if not isinstance(request_timeout, int | float) or request_timeout <= 0:
            raise InvalidInput("request_timeout", "a positive number of seconds", request_timeout)
        if owner is not None and not _is_owner_reference(owner):
            raise InvalidInput("owner", "an owner reference: apiVersion, kind, name and uid", owner)
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.context = context
        self.identity = identity or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_seconds = math.ceil(lease_duration.total_seconds())
        self._renew_every = self.lease_seconds / 6
        self._renew_deadline = self.lease_seconds * 2 / 3
        self._retry = min(self.lease_seconds / 6, 2.0)
        self._request_timeout = min(request_timeout, self._renew_deadline / 2)
        self._on_waiting = on_waiting
        self._owner = dict(owner) if owner is not None else None
        self._api: Api | None = None
        self._opens = 0
        self._local: dict[str, asyncio.Lock] = {}
        self._fences: dict[str, _Fence] = {}
        self._fenced_by: dict[str, str] = {}
        # Fenced roles whose fence has not been seen clear yet: from `fence` (or the start of a hold) until the
        # first look finds no other count, so that a worker never looks ready before it has looked at all.
        self._checking: set[str] = set()

    async def open(self) -> None:
        if self._opens == 0:
            configuration = await asyncio.to_thread(load_configuration, self.kubeconfig, self.context)
            api = Api(configuration, self._request_timeout)
            try:
                await api.check()
            except Transient as e:
                await api.close()
                raise ServiceUnavailable("Kubernetes API server", api.address, str(e)) from None
            self._api = api
        self._opens += 1

    async def close(self) -> None:
        if self._opens == 0:
            return
        self._opens -= 1
        if self._opens == 0 and self._api is not None:
            api, self._api = self._api, None
            await api.close()

    def hold(self, role: str) -> AbstractAsyncContextManager[RoleLease]:
        return self._hold(role)

    def fence(self, role: str, *, group: str, shards: int) -> None:
        """Hold `role` (shard k of `shards` of `group`, e.g. one step) only while no Lease of `group` with another
        shard count is held: a worker of the new count waits for the old count's workers to release their Leases
        (on a clean stop) or for them to expire (after a crash). Call before `hold`; the fence stays for later
        holds of the role."""
        if not isinstance(role, str) or not role:
            raise InvalidInput("role", "a non-empty string", role)
        if not isinstance(group, str) or not group:
            raise InvalidInput("group", "a non-empty string", group)
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise InvalidInput("shards", "an integer >= 1", shards)
        self._fences[role] = _Fence(group, shards)
        self._checking.add(role)

    def fenced(self, role: str) -> str | None:
        """Why `role` is not being taken right now because of its fence (e.g. "waiting for shards of n=2 to stop",
        or "checking for shards of another count" before the first look), or None."""
        why = self._fenced_by.get(role)
        if why is None and role in self._checking:
            return CHECKING_FENCE
        return why

    def _require_api(self) -> Api:
        if self._api is None:
            raise WorkflowNotRunning("the Lease role scheduler is not open")
        return self._api

    @contextlib.asynccontextmanager
    async def _hold(self, role: str) -> AsyncIterator[RoleLease]:
        api = self._require_api()
        name = lease_name(role)
        # Within one process the Lease names us either way: a local lock keeps two holds of one role apart.
        local = self._local.setdefault(role, asyncio.Lock())
        async with local:
            fence = self._fences.get(role)
            if fence is None:
                lease = await self._acquire(api, role, name)
            else:
                lease = await self._acquire_fenced(api, role, name, fence)
            renewing = asyncio.ensure_future(self._renew(api, lease))
            try:
                yield lease
            finally:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
                held = lease.held
                lease.lose("released", released=True)
                if held:
                    await asyncio.shield(self._release(api, lease))

    async def _acquire(self, api: Api, role: str, name: str) -> _HeldLease:
        seen_version: str | None = None
        seen_at = 0.0
        credit = 0.0
        waiting_on: str | None = None
        while True:
            try:
                current = await api.call(
                    f"read Lease {self.namespace}/{name}", api.coordination.read_namespaced_lease, name, self.namespace
                )
            except NotFound:
                current = None
            except Transient as e:
                logger.warning("waiting for role %s: %s", role, e)
                await asyncio.sleep(self._retry)
                continue
            spec = current.spec if current is not None else None
            if current is not None and spec is not None and spec.holder_identity:
                holder = spec.holder_identity
                version = current.metadata.resource_version if current.metadata is not None else None
                if version != seen_version:
                    seen_version, seen_at = version, time.monotonic()
                    credit = self._age_credit(spec.renew_time)
                duration = spec.lease_duration_seconds or self.lease_seconds
                left = seen_at + duration - credit - time.monotonic()
                if left > 0:
                    if holder != waiting_on and self._on_waiting is not None:
                        self._on_waiting(role, holder)
                    waiting_on = holder
                    await asyncio.sleep(min(left, self._retry))
                    continue
                logger.info("role %s: Lease %s of %s expired; taking over", role, name, holder)
            lease = await self._try_take(api, role, name, current)
            if lease is not None:
                return lease

    async def _acquire_fenced(self, api: Api, role: str, name: str, fence: _Fence) -> _HeldLease:
        seen: dict[str, _Seen] = {}
        self._checking.add(role)
        try:
            while True:
                await self._wait_fence(api, role, fence, seen)
                lease = await self._acquire(api, role, name)
                try:
                    blocking = ", ".join(held for held, _ in await self._blocking(api, fence, seen))
                except Transient as e:
                    blocking = f"unknown (the Leases could not be listed: {e})"
                except BaseException:
                    # Cancelled (or refused) between taking the Lease and handing it over: give it back rather than
                    # make the other count wait for it to expire.
                    lease.lose("not taken after all", released=True)
                    await asyncio.shield(self._release(api, lease))
                    raise
                if not blocking:
                    return lease
                # Another count got in between our look and our write: step back, without having acted.
                logger.info("role %s: shards of another count hold %s; giving the Lease back", role, blocking)
                lease.lose("fenced", released=True)
                self._checking.add(role)
                await asyncio.shield(self._release(api, lease))
                # Two contenders that saw each other both step back: a random pause lets one of them go first.
                await asyncio.sleep(random.uniform(0, self._retry))
        finally:
            self._fenced_by.pop(role, None)
            self._checking.discard(role)

    async def _wait_fence(self, api: Api, role: str, fence: _Fence, seen: dict[str, _Seen]) -> None:
        """Until no Lease of the fence's group with another shard count is held."""
        while True:
            try:
                blocking = await self._blocking(api, fence, seen)
            except Transient as e:
                logger.warning("waiting for role %s: %s", role, e)
                await asyncio.sleep(self._retry)
                continue
            if not blocking:
                self._fenced_by.pop(role, None)
                self._checking.discard(role)
                return
            counts = sorted({count for _, count in blocking})
            why = f"waiting for shards of n={', n='.join(str(c) for c in counts)} to stop"
            if self._fenced_by.get(role) != why:
                logger.info("role %s: %s (Leases %s)", role, why, ", ".join(lease for lease, _ in blocking))
            self._fenced_by[role] = why
            await asyncio.sleep(self._retry)

    async def _blocking(self, api: Api, fence: _Fence, seen: dict[str, _Seen]) -> list[tuple[str, int]]:
        """The Leases of the fence's group with another shard count that are held and not expired, with their
        counts. A record seen for the first time counts as live: its age is only known by watching it."""
        listed = await api.call(
            f"list Leases of {fence.group} in {self.namespace}",
            api.coordination.list_namespaced_lease,
            self.namespace,
            label_selector=f"{SHARD_GROUP_LABEL}={fence.label}",
        )
        now = time.monotonic()
        found: list[tuple[str, int]] = []
        for lease in listed.items:
            metadata, spec = lease.metadata, lease.spec
            if metadata is None or spec is None or not spec.holder_identity:
                continue
            if (metadata.annotations or {}).get(SHARD_GROUP_ANNOTATION) != fence.group:
                continue
            try:
                count = int((metadata.labels or {}).get(SHARDS_LABEL, ""))
            except ValueError:
                continue
            name = str(metadata.name)
            if count == fence.shards:
                continue
            record = seen.get(name)
            if record is None or record.version != metadata.resource_version:
                record = _Seen(metadata.resource_version, now, self._age_credit(spec.renew_time))
                seen[name] = record
            duration = spec.lease_duration_seconds or self.lease_seconds
            if now < record.at + duration - record.credit:
                found.append((name, count))
        return found

    def _age_credit(self, renew_time: datetime | None) -> float:
        if renew_time is None:
            return 0.0
        age = (_now() - renew_time).total_seconds()
        return min(max(age, 0.0), self.lease_seconds / 6)

    async def _try_take(self, api: Api, role: str, name: str, current: Any) -> _HeldLease | None:
        """One compare-and-swap to make the Lease ours. None if someone else got there first."""
        moment = _now()
        transitions = 0
        if current is not None:
            # Every change of holder counts, as in client-go: a Lease released by its last holder names nobody, and
            # taking it is a change too (only our own record, after a restart under the same identity, is not).
            spec = current.spec
            previous = (spec.lease_transitions or 0) if spec is not None else 0
            holder = spec.holder_identity if spec is not None else None
            transitions = previous + (0 if holder == self.identity else 1)
        body = self._body(role, name, current, acquired=moment, renewed=moment, transitions=transitions)
        started = time.monotonic()
        # Shielded: a waiter cancelled while its write is in flight must still learn whether it won, and give back
        # what it won, rather than leave a Lease nobody renews.
        attempt = asyncio.ensure_future(self._write(api, name, current, body))
        try:
            record = await asyncio.shield(attempt)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                won = await attempt
                if won is not None:
                    await self._release(api, _HeldLease(role, name, won, 0.0))
            raise
        if record is None:
            return None
        logger.info("role %s held (Lease %s/%s, identity %s)", role, self.namespace, name, self.identity)
        return _HeldLease(role, name, record, started + self._renew_deadline)

    async def _write(self, api: Api, name: str, current: Any, body: dict[str, Any]) -> Any:
        try:
            if current is None:
                return await api.call(
                    f"create Lease {self.namespace}/{name}",
                    api.coordination.create_namespaced_lease,
                    self.namespace,
                    body,
                )
            return await api.call(
                f"update Lease {self.namespace}/{name}",
                api.coordination.replace_namespaced_lease,
                name,
                self.namespace,
                body,
            )
        except Conflict:
            return None
        except Transient as e:
            logger.warning("taking Lease %s: %s", name, e)
            await asyncio.sleep(self._retry)
            return None

    def _body(
        self,
        role: str,
        name: str,
        current: Any,
        *,
        acquired: datetime | str | None,
        renewed: datetime,
        transitions: int,
        release: bool = False,
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": dict(MANAGED_BY),
            "annotations": {ROLE_ANNOTATION: role},
        }
        fence = self._fences.get(role)
        if fence is not None:
            metadata["labels"].update({SHARD_GROUP_LABEL: fence.label, SHARDS_LABEL: str(fence.shards)})
            metadata["annotations"][SHARD_GROUP_ANNOTATION] = fence.group
        if current is not None:
            metadata["resourceVersion"] = current.metadata.resource_version
        owners = self._owner_references(current)
        if owners:
            metadata["ownerReferences"] = owners
        # A released Lease names no holder and lasts a second, so a waiter takes it at its next look.
        spec: dict[str, Any] = {
            "leaseDurationSeconds": 1 if release else self.lease_seconds,
            "renewTime": _micro_time(renewed),
            "leaseTransitions": transitions,
        }
        if not release:
            spec["holderIdentity"] = self.identity
        if acquired is not None:
            spec["acquireTime"] = acquired if isinstance(acquired, str) else _micro_time(acquired)
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _owner_references(self, current: Any) -> list[dict[str, Any]]:
        """The Lease's owner references as written: those it has (a write replaces them all), plus ours."""
        found = current.metadata.owner_references if current is not None and current.metadata is not None else None
        owners = [_owner_dict(ref) for ref in found or []]
        if self._owner is None:
            return owners
        ours = self._owner
        # One naming our owner under another uid is a previous life of it, gone: ours replaces it.
        kept = [
            ref
            for ref in owners
            if ref["uid"] != ours["uid"]
            and (ref["apiVersion"], ref["kind"], ref["name"]) != (ours["apiVersion"], ours["kind"], ours["name"])
        ]
        return [*kept, dict(ours)]

    async def _renew(self, api: Api, lease: _HeldLease) -> None:
        last_start = time.monotonic()
        while True:
            wake = min(last_start + self._renew_every, lease.valid_until)
            await asyncio.sleep(max(wake - time.monotonic(), 0))
            if not lease.held:
                lease.lose("the Lease could not be renewed in time")
                return
            started = time.monotonic()
            spec = lease.record.spec
            body = self._body(
                lease.role,
                lease.name,
                lease.record,
                acquired=_micro_time(spec.acquire_time) if spec.acquire_time else None,
                renewed=_now(),
                transitions=spec.lease_transitions or 0,
            )
            try:
                lease.record = await api.call(
                    f"renew Lease {self.namespace}/{lease.name}",
                    api.coordination.replace_namespaced_lease,
                    lease.name,
                    self.namespace,
                    body,
                )
            except Transient as e:
                logger.warning("renewing role %s: %s", lease.role, e)
                last_start = time.monotonic() - self._renew_every + min(self._retry, 0.5)
                continue
            except Conflict:
                if not await self._still_ours(api, lease):
                    return
                continue
            except NotFound:
                lease.lose("its Lease was deleted")
                return
            except Exception as e:
                lease.lose(f"renewal failed: {e}")
                return
            lease.valid_until = started + self._renew_deadline
            last_start = started

    async def _still_ours(self, api: Api, lease: _HeldLease) -> bool:
        """After a conflicting renewal: adopt the newer record if it still names us (someone edited a label),
        else the role is lost."""
        try:
            current = await api.call(
                f"read Lease {self.namespace}/{lease.name}",
                api.coordination.read_namespaced_lease,
                lease.name,
                self.namespace,
            )
        except (Transient, NotFound) as e:
            lease.lose(f"its Lease could not be re-read after a conflict: {e}")
            return False
        holder = current.spec.holder_identity if current.spec is not None else None
        if holder != self.identity:
            lease.lose(f"its Lease is now held by {holder or 'nobody'}")
            return False
        lease.record = current
        return True

    async def _release(self, api: Api, lease: _HeldLease) -> None:
        """Give the Lease back at once (best effort: if this fails, it expires on its own)."""
        spec = lease.record.spec
        body = self._body(
            lease.role,
            lease.name,
            lease.record,
            acquired=None,
            renewed=_now(),
            transitions=spec.lease_transitions or 0,
            release=True,
        )
        try:
            await api.call(
                f"release Lease {self.namespace}/{lease.name}",
                api.coordination.replace_namespaced_lease,
                lease.name,
                self.namespace,
                body,
            )
        except (Conflict, NotFound):
            pass
        except Exception as e:
            logger.warning("releasing role %s: %s (it expires on its own)", lease.role, e)
