"""The helpers the tests share, each defined once: test modules never import one another, only this (and the
fixtures pytest hands them). The project's scripts run, polling for an outcome, free ports and unique names, the
repository's paths, a /metrics page parsed, a throwaway database, and what several tiers use of the operator
(Workflow manifests, `conveyor-operator` processes), of the CLI's worker app, of the engine's pipeline, and runs a
deploy strands.
The fixtures that start the real services are in tests/services.py."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from pydantic import BaseModel

from conveyor._core.records import Event

if TYPE_CHECKING:
    from kubernetes import client

    from conveyor import Builder, Run
    from conveyor._core.clock import Clock
    from conveyor._core.ports import EventStreamer, RecordStore, RoleScheduler

# -- paths ----------------------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root."""
CACHE = Path(os.environ.get("CONVEYOR_CACHE") or Path.home() / ".cache" / "conveyor")
"""Where scripts/ keeps what it builds and the services' data (outside the repository)."""
CONVEYOR = Path(sys.executable).parent / "conveyor"
"""The installed `conveyor` console script of this virtualenv."""


# -- the project's scripts -----------------------------------------------------------------------------------------


def run_script(
    script: str, *args: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """scripts/<script> with `args`, its output read back as text. The output goes to files, not pipes: a server
    the script leaves running could hold a pipe open, and then neither the script's end nor `timeout` would ever be
    seen (a hung test instead of a failed one). Raises subprocess.TimeoutExpired after `timeout` seconds."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / script), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            timeout=timeout,
            check=False,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())


# -- polling --------------------------------------------------------------------------------------------------------


def eventually(check: Callable[[], Any], timeout: float = 45.0, interval: float = 0.2) -> Any:
    """`check()`'s first truthy result, looking every `interval` seconds (blocking the thread: for tests outside an
    event loop); fails with the last result (or the last AssertionError) after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout}s: {last!r}")
        time.sleep(interval)


async def until(
    check: Callable[[], bool], timeout: float = 5.0, interval: float = 0.002, *, in_thread: bool = False
) -> None:
    """Returns once `check()` is true, looking every `interval` seconds without blocking the event loop between
    looks; TimeoutError after `timeout`. With `in_thread` each look runs on a thread (for a check that calls a
    blocking client, such as the Kubernetes API's, while the loop has work of its own)."""
    async with asyncio.timeout(timeout):
        while not (await asyncio.to_thread(check) if in_thread else check()):
            await asyncio.sleep(interval)


# -- names and ports ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port that nothing listens on now (the OS's choice; free until someone else takes it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def unique(prefix: str) -> str:
    """`prefix` plus a random suffix: a name (workflow, role, Lease, Kubernetes object) no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- services' answers ----------------------------------------------------------------------------------------------

Metrics = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(text: str) -> Metrics:
    """A /metrics page parsed as Prometheus parses it: series name -> sorted labels -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    found: Metrics = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@contextlib.contextmanager
def empty_database(pg_dsn: str, prefix: str) -> Iterator[str]:
    """The DSN of a new database (named `prefix` plus a random suffix) on `pg_dsn`'s server, with no schema; it is
    dropped, connections and all, afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


# -- the operator's resources and processes -------------------------------------------------------------------------

GROUP, VERSION = "conveyor.dev", "v1alpha1"
LEASE_SECONDS = 5
"""The lease duration of the `conveyor-operator` processes the tests start: short, so a takeover is quick."""


def workflow(name: str, steps: dict[str, dict[str, Any]], partitions: int = 4, **spec: Any) -> dict[str, Any]:
    """A Workflow manifest."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "image": "example.com/orders:1.4",
            "entrypoint": "orders.workflow:builder",
            "store": {"secretRef": {"name": "pg", "key": "dsn"}},
            "streamer": {"bootstrapServers": "kafka:9092", "partitions": partitions},
            "steps": steps,
            **spec,
        },
    }


def create_custom(
    api: client.ApiClient, namespace: str, body: dict[str, Any], plural: str = "workflows"
) -> dict[str, Any]:
    """Creates a custom object of our group (a Workflow unless `plural` says otherwise); the API server's answer."""
    from kubernetes import client

    # The client types a custom object as `object`; the API server answers with the object's JSON.
    created = client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    return cast(dict[str, Any], created)


def has_deployments(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Whether the Workflow `name` of a one-step manifest has both its Deployments: the step's one shard and the
    system roles'."""
    from kubernetes import client

    found = client.AppsV1Api(api).list_namespaced_deployment(namespace, label_selector=f"conveyor.dev/workflow={name}")
    return len(found.items) == 2


class Operator:
    """A `conveyor-operator` process with leader election on the Lease `lease`, its liveness, readiness and metrics
    on a port of its own, and its log kept in a file (see `output()`)."""

    def __init__(self, name: str, namespace: str, lease: str, kubeconfig: str, seconds: int = LEASE_SECONDS) -> None:
        self.name = name
        self.port = free_port()
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop(), it outlives __init__)
        env = {**os.environ, "KUBECONFIG": kubeconfig, "POD_NAME": name, "POD_NAMESPACE": namespace}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor_operator",
                "--namespace",
                namespace,
                "--leader-election",
                "--leader-election-lease",
                lease,
                "--lease-duration",
                str(seconds),
                "--liveness",
                f"http://127.0.0.1:{self.port}/healthz",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: nobody reads a pipe while the operator runs, and a full one would block its logging
            # (and so the operator) once it has logged 64 KiB, as it does through an API server restart.
            stderr=self._log,
            text=True,
        )

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:  # a 503 (urllib's HTTPError) included
            return False

    def metrics(self) -> Metrics:
        """Its /metrics, parsed (`scrape`)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            return scrape(answer.read().decode())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._log.close()


# -- the CLI tests' worker app (tests/cli/worker_app.py) ------------------------------------------------------------

CLI_APPS = ROOT / "tests" / "cli"
"""The folder of the apps the CLI tests load by entrypoint (`worker_app:builder`, `runs_app:builder`)."""
WORKER_MANIFEST: dict[str, dict[str, Any]] = {
    "OPENED": {"parallelCount": 1, "errBackOff": "200ms"},
    "TRIAGED": {"parallelCount": 1},
}
"""The worker app's steps, as a Workflow's spec.steps gives them to `conveyor worker --steps`."""
WORKER_PARTITIONS = 3
"""The partitions of the worker app's Kafka topics."""


# -- the engine's pipeline ------------------------------------------------------------------------------------------


class Receiver:
    """A receiver over a fixed list of events (ids from 1, one per foreign id given) that records what is
    acknowledged; past the last event it waits for ever."""

    def __init__(self, foreign_ids: list[str]) -> None:
        at = datetime.now(UTC)
        self.events = [Event(i + 1, fid, 1, {}, at) for i, fid in enumerate(foreign_ids)]
        self.position = 0
        self.acked: list[int] = []

    async def recv(self) -> Event:
        if self.position == len(self.events):
            await asyncio.Event().wait()
        self.position += 1
        return self.events[self.position - 1]

    async def ack(self, event: Event) -> None:
        self.acked.append(event.id)

    async def close(self) -> None:
        return None


@contextlib.asynccontextmanager
async def no_drain() -> AsyncIterator[None]:
    """A pipeline's drain guard that guards nothing (no workflow is stopping)."""
    yield


# -- runs a deploy strands (the stranded-runs check) ----------------------------------------------------------------


class Parcel(BaseModel):
    note: str = ""


class Parked(enum.IntEnum):
    """Statuses A, B and C: the old code moves runs A -> B -> C."""

    A = 1
    B = 2
    C = 3


def _to_b(run: Run[Parcel, Parked]) -> Parked:
    return Parked.B


def _to_c(run: Run[Parcel, Parked]) -> Parked:
    return Parked.C


def parked(name: str, *, b_step: bool = True) -> Builder[Parcel, Parked]:
    """The workflow `name` of statuses A, B and C: A's step to B and, with `b_step`, B's step to C. Without it (the
    next deploy's code) B is terminal, and runs the old code left at B are stranded."""
    from conveyor import Builder

    b = Builder(name, Parcel, Parked)
    b.add_step(Parked.A, _to_b, Parked.B)
    if b_step:
        b.add_step(Parked.B, _to_c, Parked.C)
    return b


async def park_at_b(
    streamer: EventStreamer, store: RecordStore, roles: RoleScheduler, name: str, clock: Clock
) -> list[str]:
    """Three runs of the old code (`parked(name)`) left at B, as a deploy finds them: two moved there by A's step,
    one of them paused, and one triggered there (initiated); B's step never ran. Their run ids."""
    from conveyor import ProcessKind

    wf = parked(name).build(streamer, store, roles, clock=clock)
    a_step = [p.role for p in wf.processes() if p.kind == ProcessKind.STEP_CONSUMER and p.status is Parked.A]
    relay = [p.role for p in wf.processes() if p.kind == ProcessKind.OUTBOX_RELAY]
    await wf.run(roles=a_step + relay)
    try:
        moved = [await wf.trigger(f"parcel-{i}") for i in range(2)]
        for i, run_id in enumerate(moved):
            await wf.wait_for(f"parcel-{i}", run_id, Parked.B, timeout=10)
        await wf.pause(moved[1], "on hold")
        started = await wf.trigger("parcel-2", start_at=Parked.B)
    finally:
        await wf.stop()
    return [*moved, started]
