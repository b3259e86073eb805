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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor._core.ports import RoleLease
from conveyor.adapters.kubernetes._client import Api, Conflict, NotFound, Transient, load_configuration
from conveyor.adapters.kubernetes._names import lease_name
from conveyor.errors import InvalidInput, ServiceUnavailable, WorkflowNotRunning

logger = logging.getLogger("conveyor.adapters.kubernetes")

ROLE_ANNOTATION = "conveyor.dev/role"
MANAGED_BY = {"app.kubernetes.io/managed-by": "conveyor"}
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _now() -> datetime:
    return datetime.now(UTC)


def _micro_time(moment: datetime) -> str:
    # MicroTime must carry its fraction: the client's isoformat() drops it when it is zero, which the server refuses.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    a restarted process is never mistaken for its previous life).
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
    ) -> None:
        if not isinstance(namespace, str) or len(namespace) > 63 or not _NAMESPACE.match(namespace):
            raise InvalidInput("namespace", "a Kubernetes namespace name (lowercase RFC 1123 label)", namespace)
        if not isinstance(lease_duration, timedelta) or lease_duration < timedelta(seconds=1):
            raise InvalidInput("lease_duration", "a timedelta of at least 1 second", lease_duration)
        if identity is not None and (not isinstance(identity, str) or not identity.strip()):
            raise InvalidInput("identity", "a non-empty string", identity)
        if not isinstance(request_timeout, int | float) or request_timeout <= 0:
            raise InvalidInput("request_timeout", "a positive number of seconds", request_timeout)
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.context = context
        self.identity = identity or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_seconds = math.ceil(lease_duration.total_seconds())
        self._renew_every = self.lease_seconds / 6
        self._renew_deadline = self.lease_seconds * 2 / 3
        self._retry = min(self.lease_seconds / 6, 2.0)
        self._request_timeout = min(request_timeout, self._renew_deadline / 2)
        self._api: Api | None = None
        self._opens = 0
        self._local: dict[str, asyncio.Lock] = {}

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
            lease = await self._acquire(api, role, name)
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
                    await asyncio.sleep(min(left, self._retry))
                    continue
                logger.info("role %s: Lease %s of %s expired; taking over", role, name, holder)
            lease = await self._try_take(api, role, name, current)
            if lease is not None:
                return lease

    def _age_credit(self, renew_time: datetime | None) -> float:
        if renew_time is None:
            return 0.0
        age = (_now() - renew_time).total_seconds()
        return min(max(age, 0.0), self.lease_seconds / 6)

    async def _try_take(self, api: Api, role: str, name: str, current: Any) -> _HeldLease | None:
        """One compare-and-swap to make the Lease ours. None if someone else got there first."""
        moment = _now()
        transitions = 0
        if current is not None and current.spec is not None:
            transitions = (current.spec.lease_transitions or 0) + (1 if current.spec.holder_identity else 0)
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
        if current is not None:
            metadata["resourceVersion"] = current.metadata.resource_version
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
