"""`conveyor worker`: the manifest checked against the code (every problem named by its field), role selection,
and real worker processes on Postgres + Kafka + Kubernetes Leases: runs move through the worker's step, /metrics
and /readyz answer over HTTP, SIGTERM releases the Lease and exits 0, and a standby takes the role over. With
--wait-for-store a worker whose database is down, missing or not migrated waits, unready, and runs once it is up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from click.testing import CliRunner

from conveyor import Workflow, duration_timer
from conveyor._engine.roles import step_role
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer, MemoryTimeoutStore
from conveyor.cli import cli
from conveyor.cli._manifest import ManifestError, parse_duration, parse_steps, step_options
from conveyor.cli._worker import choose_roles
from tests.adapters.tcp_proxy import TcpProxy
from tests.cli.worker_app import Ticket, TicketStatus, make
from tests.helpers import CLI_APPS, CONVEYOR, WORKER_MANIFEST, WORKER_PARTITIONS, free_port, scrape

NAMESPACE = "default"


def invoke(*args: str, steps: object = WORKER_MANIFEST) -> Any:
    base = ["worker", "worker_app:builder", "--path", str(CLI_APPS), "--dsn", "postgresql://nobody@127.0.0.1:1/x"]
    base += ["--kafka", "127.0.0.1:1", "--port", str(free_port())]
    if steps is not None:
        base += ["--steps", steps if isinstance(steps, str) else json.dumps(steps)]
    return CliRunner().invoke(cli, [*base, *args])


# -- the manifest against the code, and bad arguments (no service needed) -------------------------------------------


def test_a_manifest_that_differs_from_the_code_exits_2_naming_the_steps() -> None:
    result = invoke("--system", steps={"OPENED": {}, "SHIPPED": {}, "CLOSED": {}})
    assert result.exit_code == 2, result.output
    assert "do not match the code of workflow 'worker-app'" in result.output
    assert "only in the manifest: SHIPPED (not a status of TicketStatus), CLOSED (no step in the code)" in result.output
    assert "only in the code: TRIAGED" in result.output


def test_a_mismatch_is_also_said_in_the_termination_log_for_the_operator(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.touch()  # as the kubelet mounts it
    result = invoke("--system", "--termination-log", str(log), steps={"OPENED": {}, "SHIPPED": {}})
    assert result.exit_code == 2, result.output
    said = log.read_text()
    assert said.startswith("CodeMismatch: the manifest's steps do not match the code of workflow 'worker-app': ")
    assert "only in the manifest: SHIPPED (not a status of TicketStatus); only in the code: TRIAGED" in said
    # Outside a pod (no such file) nothing is written anywhere.
    missing = tmp_path / "absent" / "termination-log"
    result = invoke("--system", "--termination-log", str(missing), steps={"OPENED": {}})
    assert result.exit_code == 2, result.output
    assert not missing.exists()
    assert not (tmp_path / "absent").exists()


def test_a_manifest_that_matches_writes_no_termination_message(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.touch()
    # It gets past the check and fails later, on the unreachable database: that is not the worker's to say.
    result = invoke("--system", "--termination-log", str(log))
    assert result.exit_code == 1, result.output
    assert log.read_text() == ""


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"errBackOff": "soon"}, "steps.OPENED.errBackOff: expected a duration like 30s, got 'soon'"),
        ({"errBackOff": 30}, "steps.OPENED.errBackOff: expected a duration like 30s, got 30"),
        ({"pollingFrequency": "0s"}, "steps.OPENED.pollingFrequency: expected a positive duration like 500ms"),
        ({"lagAlert": "-1m"}, "steps.OPENED.lagAlert: expected a duration like 30s, got '-1m'"),
        ({"parallelCount": 0}, "steps.OPENED.parallelCount: expected an integer >= 1, got 0"),
        ({"parallelCount": "2"}, "steps.OPENED.parallelCount: expected an integer >= 1, got '2'"),
        ({"pauseAfterErrCount": True}, "steps.OPENED.pauseAfterErrCount: expected an integer >= 0, got True"),
        ({"parallel_count": 2}, "steps.OPENED.parallel_count: unknown key; expected one of parallelCount,"),
        ("fast", "steps.OPENED: expected an object of step options"),
    ],
)
def test_bad_step_options_exit_2_naming_the_field(step: object, message: str) -> None:
    result = invoke("--system", steps={"OPENED": step, "TRIAGED": {}})
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_steps(json.dumps({"A": {"errBackOff": "x"}, "B": {"maxInFlight": 0, "what": 1}}))
    assert sorted(caught.value.problems) == [
        "steps.A.errBackOff: expected a duration like 30s, got 'x'",
        "steps.B.maxInFlight: expected an integer >= 1, got 0",
        "steps.B.what: unknown key; expected one of parallelCount, replicasPerShard, pauseAfterErrCount, "
        "errBackOff, pollingFrequency, lagAlert, consumeLag, maxInFlight",
    ]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("{not json", "steps: expected JSON"),
        ("[1, 2]", "steps: expected a JSON object keyed by step status name, got [1, 2]"),
    ],
)
def test_steps_that_are_not_a_json_object_exit_2(steps: str, message: str) -> None:
    result = invoke("--system", steps=steps)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give one role: --step NAME --shard K, or --system"),
        (("--system", "--step", "OPENED"), "either --step NAME --shard K, or --system, not both"),
        (("--step", "OPENED"), "--step NAME needs --shard K"),
        (("--shard", "1"), "--shard K needs --step NAME"),
        (("--step", "CLOSED", "--shard", "1"), "'CLOSED' is not a step of workflow 'worker-app'; its steps: OPENED"),
        (("--step", "OPENED", "--shard", "2"), "2 is outside 1..1: step OPENED has 1 shard(s)"),
        (("--step", "OPENED", "--shard", "0"), "--shard"),
        (("--system", "--namespace", "Not_A_Namespace"), "namespace: expected a Kubernetes namespace name"),
    ],
)
def test_bad_role_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output


def test_without_a_manifest_the_codes_options_hold() -> None:
    # The code says parallel_count=2 for OPENED: shard 2 exists (it then fails only on the unreachable database).
    result = invoke("--step", "OPENED", "--shard", "3", steps=None)
    assert result.exit_code == 2
    assert "3 is outside 1..2" in result.output


def test_an_unreachable_database_exits_1_naming_it_with_the_password_masked() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "worker",
            "worker_app:builder",
            "--path",
            str(CLI_APPS),
            "--system",
            "--dsn",
            "postgresql://conveyor:s3cret@127.0.0.1:1/conveyor",
            "--kafka",
            "127.0.0.1:1",
            "--port",
            str(free_port()),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "PostgreSQL at 127.0.0.1:1" in result.output
    assert "unavailable" in result.output
    assert "s3cret" not in result.output


def test_waiting_for_the_store_does_not_wait_for_a_code_that_does_not_match(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.touch()
    started = time.monotonic()
    result = invoke("--system", "--wait-for-store", "--termination-log", str(log), steps={"OPENED": {}, "SHIPPED": {}})
    assert result.exit_code == 2, result.output
    assert time.monotonic() - started < 10
    assert log.read_text().startswith("CodeMismatch: ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("1.5h", 5400), ("0", 0), ("1h2m3.5s", 3723.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "soon", "1x", "s", "-1s", "1s 2m", "1.2.3s"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_duration(text)


def test_system_roles_are_every_role_but_the_step_consumers() -> None:
    b = make("roles-app")

    def expire(run: object, now: object) -> TicketStatus:
        return TicketStatus.CLOSED

    b.add_timeout(TicketStatus.TRIAGED, duration_timer(timedelta(hours=1)), expire, TicketStatus.CLOSED)
    b.on_complete(lambda run: None)
    manifest = parse_steps(json.dumps({"OPENED": {"parallelCount": 3}, "TRIAGED": {}}))
    wf = b.build(
        MemoryStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        step_options=step_options(b.spec(), manifest),
    )
    consumers = {step_role("roles-app", 1, k, 3) for k in (1, 2, 3)} | {step_role("roles-app", 2, 1, 1)}
    assert consumers <= set(wf.roles())
    system = choose_roles(wf, None, None, True)
    assert set(system) == set(wf.roles()) - consumers
    assert {
        "roles-app-outbox-consumer",
        "roles-app-2-timeout-consumer",
        "roles-app-2-timeout-auto-inserter-consumer",
        "roles-app-completed-run-state-change-hook-consumer",
        "roles-app-delete-consumer",
        "roles-app-paused-records-retry-consumer",
        "roles-app-stranded-runs-check",
    } == set(system)
    assert choose_roles(wf, "OPENED", 3, False) == [step_role("roles-app", 1, 3, 3)]


# -- real workers -----------------------------------------------------------------------------------------------------


class Worker:
    """One `conveyor worker` process, its output in a file, its HTTP endpoints on a free port."""

    def __init__(
        self,
        env: dict[str, str],
        identity: str,
        role: list[str],
        log_dir: Path,
        steps: dict[str, Any] = WORKER_MANIFEST,
        lease_seconds: int = 3,
    ) -> None:
        self.identity = identity
        self.port = free_port()
        self.log = log_dir / f"worker-{identity}.log"
        args = [str(CONVEYOR), "worker", "worker_app:builder", "--path", str(CLI_APPS), *role]
        args += ["--steps", json.dumps(steps), "--partitions", str(WORKER_PARTITIONS), "--namespace", NAMESPACE]
        args += ["--lease-duration", str(lease_seconds), "--host", "127.0.0.1", "--port", str(self.port)]
        # As the operator's pods do: the identity from the downward API's POD_NAME.
        env = {**env, "POD_NAME": identity}
        with self.log.open("w") as out:
            self.process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log_dir)

    def output(self) -> str:
        return self.log.read_text()

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}{path}", timeout=aiohttp.ClientTimeout(total=5)) as response,
        ):
            return response.status, await response.text()

    async def wait_answering(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"worker {self.identity} exited:\n{self.output()}"
            try:
                await self.get("/healthz")
                return
            except aiohttp.ClientError:
                assert time.monotonic() < deadline, f"worker {self.identity} never answered:\n{self.output()}"
                await asyncio.sleep(0.1)

    async def wait_ready(self, timeout: float = 30) -> None:
        await self.wait_answering(timeout)
        deadline = time.monotonic() + timeout
        while (await self.get("/readyz"))[0] != 200:
            assert self.process.poll() is None, f"worker {self.identity} exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"worker {self.identity} never ready:\n{self.output()}"
            await asyncio.sleep(0.1)

    async def terminate(self, timeout: float = 10) -> tuple[int, float]:
        """SIGTERM; the exit code and how long it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def app(pg_dsn: str, kafka_bootstrap: str, kubeconfig: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A workflow name of this test's own, the environment its workers run with, and every worker started."""
    name = f"worker-app-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "WORKER_APP_NAME": name,
        "CONVEYOR_PG_DSN": pg_dsn,
        "CONVEYOR_KAFKA": kafka_bootstrap,
        "KUBECONFIG": kubeconfig,
    }
    env.pop("POD_NAME", None)
    env.pop("CONVEYOR_STEPS", None)
    started: list[Worker] = []

    def start(
        identity: str, *role: str, steps: dict[str, Any] = WORKER_MANIFEST, lease_seconds: int = 3, **extra: str
    ) -> Worker:
        worker = Worker({**env, **extra}, identity, list(role), tmp_path, steps, lease_seconds)
        started.append(worker)
        return worker

    yield {"name": name, "start": start, "dsn": pg_dsn, "kafka": kafka_bootstrap, "kubeconfig": kubeconfig}
    for worker in started:
        worker.kill()


@pytest.fixture
async def client(app: dict[str, Any]) -> AsyncIterator[Workflow[Ticket, TicketStatus]]:
    """The same workflow in the test process, running no role: it triggers runs and reads them."""
    from conveyor.adapters.kafka import KafkaStreamer
    from conveyor.adapters.postgres import PostgresRecordStore

    wf = make(app["name"]).build(
        KafkaStreamer(app["kafka"], partitions=WORKER_PARTITIONS),
        PostgresRecordStore(app["dsn"]),
        MemoryRoleScheduler(),
    )
    await wf.run(roles=())
    yield wf
    await wf.stop(grace=1)


async def triaged(wf: Workflow[Ticket, TicketStatus], run_ids: list[str], timeout: float = 30) -> list[Ticket]:
    """Wait until every run is at TRIAGED; their objects."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [await wf.get_run(run_id) for run_id in run_ids]
        if all(run.status is TicketStatus.TRIAGED for run in runs):
            return [run.object for run in runs]
        assert time.monotonic() < deadline, [(run.foreign_id, run.status.name) for run in runs]
        await asyncio.sleep(0.1)


def lease_holder(kubeconfig: str, role: str) -> str | None:
    from kubernetes import client, config

    from conveyor.adapters.kubernetes._names import lease_name

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    with client.ApiClient(configuration) as api:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(lease_name(role), NAMESPACE)
    assert lease.spec is not None
    holder: str | None = lease.spec.holder_identity
    return holder


async def test_a_worker_runs_its_step_serves_metrics_and_releases_its_lease_on_sigterm(
    app: dict[str, Any], client: Workflow[Ticket, TicketStatus]
) -> None:
    name = app["name"]
    # The manifest's parallelCount 1 overrides the code's 2.
    role = step_role(name, int(TicketStatus.OPENED), 1, 1)
    system = app["start"]("system", "--system")
    step = app["start"]("step-a", "--step", "OPENED", "--shard", "1")
    await system.wait_ready()
    await step.wait_ready()
    assert await step.get("/readyz") == (200, "ready\n")
    assert await step.get("/healthz") == (200, "ok\n")

    run_ids = [await client.trigger(f"ticket-{i}") for i in range(6)]
    tickets = await triaged(client, run_ids)
    assert {t.triaged_by for t in tickets} == {"step-a"}
    # Nobody runs the TRIAGED step: runs stop there.
    await asyncio.sleep(0.5)
    assert {(await client.get_run(r)).status for r in run_ids} == {TicketStatus.TRIAGED}

    status, metrics = await step.get("/metrics")
    assert status == 200
    assert f'conveyor_role_held{{role="{role}",workflow_name="{name}"}} 1.0' in metrics
    latency = f'workflow_process_latency_seconds_count{{process_name="opened-consumer-1-of-1",workflow_name="{name}"}}'
    assert latency in metrics
    assert lease_holder(app["kubeconfig"], role) == "step-a"

    code, took = await step.terminate()
    assert code == 0, step.output()
    assert took < 5, step.output()
    assert lease_holder(app["kubeconfig"], role) is None
    code, _ = await system.terminate()
    assert code == 0, system.output()


async def test_a_standby_is_ready_waits_for_the_role_and_takes_over_after_sigterm(
    app: dict[str, Any], client: Workflow[Ticket, TicketStatus]
) -> None:
    role = step_role(app["name"], int(TicketStatus.OPENED), 1, 1)
    system = app["start"]("system", "--system")
    first = app["start"]("first", "--step", "OPENED", "--shard", "1")
    await system.wait_ready()
    await first.wait_ready()
    second = app["start"]("second", "--step", "OPENED", "--shard", "1")
    await second.wait_answering()
    await asyncio.sleep(1)
    # A hot standby is ready (a shard with two replicas must count as ready) but does not hold the role.
    assert await second.get("/readyz") == (200, "ready\n")
    _, metrics = await second.get("/metrics")
    assert f'conveyor_role_held{{role="{role}",workflow_name="{app["name"]}"}} 0.0' in metrics

    before = [await client.trigger(f"before-{i}") for i in range(3)]
    assert {t.triaged_by for t in await triaged(client, before)} == {"first"}

    code, _ = await first.terminate()
    assert code == 0, first.output()
    async with asyncio.timeout(10):
        while lease_holder(app["kubeconfig"], role) != "second":
            await asyncio.sleep(0.1)

    after = [await client.trigger(f"after-{i}") for i in range(3)]
    assert {t.triaged_by for t in await triaged(client, after)} == {"second"}
    for worker in (second, system):
        code, _ = await worker.terminate()
        assert code == 0, worker.output()


async def wait_said(worker: Worker, prefix: str, timeout: float = 30) -> str:
    """Until the worker's /readyz says something starting with `prefix` (a 503); what it says."""
    await worker.wait_answering(timeout)
    deadline = time.monotonic() + timeout
    while True:
        status, text = await worker.get("/readyz")
        if text.startswith(prefix):
            assert status == 503
            return text
        assert status != 200, f"{worker.identity} became ready: {text}\n{worker.output()}"
        assert time.monotonic() < deadline, f"{worker.identity} never said {prefix!r}: {text}\n{worker.output()}"
        await asyncio.sleep(0.1)


async def test_a_worker_waits_unready_for_its_database_to_come_up_then_runs(
    app: dict[str, Any], client: Workflow[Ticket, TicketStatus]
) -> None:
    # The worker's database is reached through a port where nothing listens yet: a server that is not up.
    dsn = urlsplit(app["dsn"])
    assert dsn.hostname is not None and dsn.port is not None
    proxy = TcpProxy(dsn.hostname, dsn.port)
    port = free_port()
    proxied = dsn._replace(netloc=f"{dsn.username}@127.0.0.1:{port}").geturl()
    system = app["start"]("system", "--system")
    step = app["start"]("late", "--step", "OPENED", "--shard", "1", "--wait-for-store", CONVEYOR_PG_DSN=proxied)
    said = await wait_said(step, "waiting for the record store: ")
    assert said.startswith(f"waiting for the record store: PostgreSQL at 127.0.0.1:{port}/conveyor is unavailable: ")
    assert await step.get("/healthz") == (200, "ok\n")
    await system.wait_ready()
    await asyncio.sleep(4.5)  # a few more attempts, 2 s apart
    assert step.process.poll() is None, step.output()
    # One line for the reason, not one per attempt.
    assert step.output().count("waiting for the record store: ") == 1, step.output()

    await proxy.start(port)
    try:
        await step.wait_ready()
        assert "the record store is open" in step.output()
        run_ids = [await client.trigger(f"late-{i}") for i in range(3)]
        assert {t.triaged_by for t in await triaged(client, run_ids)} == {"late"}
        for worker in (step, system):
            code, _ = await worker.terminate()
            assert code == 0, worker.output()
    finally:
        proxy.cut()


async def test_a_worker_waits_for_its_database_to_be_created_and_migrated(app: dict[str, Any]) -> None:
    import psycopg

    from conveyor.adapters.postgres import migrate

    # A database that does not exist yet (a cluster's Postgres still being provisioned), then exists unmigrated
    # (`conveyor db migrate` runs as a Job after the workers start).
    name = f"worker_wait_{uuid.uuid4().hex[:8]}"
    dsn = urlsplit(app["dsn"])._replace(path=f"/{name}").geturl()
    # As the operator's pods ask for it: in the environment.
    step = app["start"](
        "early", "--step", "OPENED", "--shard", "1", CONVEYOR_PG_DSN=dsn, CONVEYOR_WAIT_FOR_STORE="true"
    )
    # Stopped while it waits, a worker exits at once and cleanly.
    stopped = app["start"]("stopped", "--system", "--wait-for-store", CONVEYOR_PG_DSN=dsn)
    try:
        said = await wait_said(step, "waiting for the record store: ")
        assert f'database "{name}" does not exist' in said, said
        await wait_said(stopped, "waiting for the record store: ")
        code, took = await stopped.terminate()
        assert (code, took < 5) == (0, True), stopped.output()

        with psycopg.connect(app["dsn"], autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        said = await wait_said(step, "waiting for the record store: the database at ")
        assert "has no current conveyor schema: run `conveyor db migrate`" in said, said
        await migrate(dsn)
        await step.wait_ready()
        output = step.output()
        assert output.count("waiting for the record store: ") == 2, output
        code, _ = await step.terminate()
        assert code == 0, step.output()
    finally:
        step.kill()
        with psycopg.connect(app["dsn"], autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_sigterm_lets_the_current_event_finish(
    app: dict[str, Any], client: Workflow[Ticket, TicketStatus], tmp_path: Path
) -> None:
    started = tmp_path / "started"
    started.mkdir()
    system = app["start"]("system", "--system")
    step = app["start"]("busy", "--step", "OPENED", "--shard", "1", WORKER_APP_SLOW_DIR=str(started))
    await system.wait_ready()
    await step.wait_ready()
    run_id = await client.trigger("slow-1")
    async with asyncio.timeout(30):
        while not (started / "slow-1").exists():
            await asyncio.sleep(0.05)
    code, took = await step.terminate()
    assert code == 0, step.output()
    assert 1 < took < 10, step.output()
    # The step was allowed to finish and its outcome stored before the worker let go of its role.
    run = await client.get_run(run_id)
    assert run.status is TicketStatus.TRIAGED
    assert run.object.triaged_by == "busy"
    code, _ = await system.terminate()
    assert code == 0, system.output()


def series(page: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float | None:
    return page.get(name, {}).get(tuple(sorted(labels.items())))


async def test_the_workers_metrics_endpoint_serves_the_references_metrics_for_what_happened(
    app: dict[str, Any], client: Workflow[Ticket, TicketStatus]
) -> None:
    name = app["name"]
    system = app["start"]("system", "--system")
    opened = app["start"]("opened", "--step", "OPENED", "--shard", "1")
    triaged_ = app["start"]("triaged", "--step", "TRIAGED", "--shard", "1")
    for worker in (system, opened, triaged_):
        await worker.wait_ready()
    runs = 3
    run_ids = [await client.trigger(f"m-{i}") for i in range(runs)]
    for i, run_id in enumerate(run_ids):
        await client.wait_for(f"m-{i}", run_id, TicketStatus.CLOSED, timeout=30)

    async def page(worker: Worker) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        status, text = await worker.get("/metrics")
        assert status == 200
        return scrape(text)

    step = await page(opened)
    process = "opened-consumer-1-of-1"
    of = {"workflow_name": name, "process_name": process}
    assert series(step, "conveyor_role_held", workflow_name=name, role=step_role(name, 1, 1, 1)) == 1
    assert series(step, "workflow_process_states", **of) == 2  # Running
    assert series(step, "workflow_process_latency_seconds_count", **of) == runs
    assert series(step, "workflow_process_latency_seconds_bucket", **of, le="300.0") == runs
    lag = series(step, "workflow_process_lag_seconds", **of)
    assert lag is not None and 0 <= lag < 60
    assert series(step, "workflow_process_lag_alert", **of) == 0  # under the default 30 minutes
    assert not series(step, "workflow_process_error_count_total", **of)
    # The OPENED step found each initiated run "Running" (as the reference counts it) and left it running.
    changes = {"workflow_name": name, "previous_run_state": "Running", "current_run_state": "Running"}
    assert series(step, "workflow_run_state_changes_total", **changes) == runs

    last = await page(triaged_)
    completed = {**changes, "current_run_state": "Completed"}
    assert series(last, "workflow_run_state_changes_total", **completed) == runs
    assert series(last, "workflow_process_states", workflow_name=name, process_name="triaged-consumer-1-of-1") == 2

    # The system worker's outbox relay published every event: each run's CREATED, TRIAGED and completion.
    deadline = time.monotonic() + 30
    outbox = {"workflow_name": name, "process_name": "outbox-consumer"}
    while (published := series(await page(system), "workflow_process_latency_seconds_count", **outbox)) != 3 * runs:
        assert time.monotonic() < deadline, published
        await asyncio.sleep(0.2)
    page_ = await page(system)
    assert series(page_, "conveyor_role_held", workflow_name=name, role=f"{name}-outbox-consumer") == 1
    assert series(page_, "workflow_process_lag_alert", **outbox) == 0
    for worker in (opened, triaged_, system):
        code, _ = await worker.terminate()
        assert code == 0, worker.output()


# -- scaling a step: shards of a new count wait for the old count's (the shard fence) --------------------------------


def shards_of(count: int) -> dict[str, Any]:
    return {**WORKER_MANIFEST, "OPENED": {**WORKER_MANIFEST["OPENED"], "parallelCount": count}}


async def started_shards(app: dict[str, Any], prefix: str, count: int, lease_seconds: int = 3) -> list[Worker]:
    return [
        app["start"](
            f"{prefix}-{k}", "--step", "OPENED", "--shard", str(k), steps=shards_of(count), lease_seconds=lease_seconds
        )
        for k in range(1, count + 1)
    ]


async def test_shards_of_a_new_count_wait_for_the_old_ones_to_stop_then_take_over(
    app: dict[str, Any], client: Workflow[Ticket, TicketStatus]
) -> None:
    name = app["name"]
    system = app["start"]("system", "--system")
    old = await started_shards(app, "old", 2)
    for worker in (system, *old):
        await worker.wait_ready()

    new = await started_shards(app, "new", 3)
    for k, worker in enumerate(new, start=1):
        said = await wait_said(worker, "waiting for shards of n=2 to stop")
        assert said == f"waiting for shards of n=2 to stop (role {step_role(name, 1, k, 3)})\n"
    # Runs triggered now are the old count's alone: the new workers hold nothing and consume nothing.
    before = [await client.trigger(f"before-{i}") for i in range(6)]
    assert {t.triaged_by for t in await triaged(client, before)} <= {"old-1", "old-2"}
    for k in range(1, 4):
        with pytest.raises(Exception, match="Not Found"):
            lease_holder(app["kubeconfig"], step_role(name, 1, k, 3))
    for worker in new:
        assert (await worker.get("/readyz"))[0] == 503

    for worker in old:
        code, _ = await worker.terminate()
        assert code == 0, worker.output()
    for worker in new:
        await worker.wait_ready()
    for k, worker in enumerate(new, start=1):
        assert lease_holder(app["kubeconfig"], step_role(name, 1, k, 3)) == worker.identity
    after = [await client.trigger(f"after-{i}") for i in range(6)]
    assert {t.triaged_by for t in await triaged(client, after)} <= {"new-1", "new-2", "new-3"}
    for worker in (*new, system):
        code, _ = await worker.terminate()
        assert code == 0, worker.output()


async def test_after_a_sigkill_the_new_count_waits_for_the_old_leases_to_expire(
    app: dict[str, Any], client: Workflow[Ticket, TicketStatus]
) -> None:
    name = app["name"]
    system = app["start"]("system", "--system")
    # Long enough a lease that the checks below run well inside it on a busy machine.
    old = await started_shards(app, "old", 2, lease_seconds=8)
    for worker in (system, *old):
        await worker.wait_ready()
    new = await started_shards(app, "new", 1, lease_seconds=8)
    await wait_said(new[0], "waiting for shards of n=2 to stop")

    for worker in old:
        worker.kill()  # SIGKILL: nothing is released
    assert {lease_holder(app["kubeconfig"], step_role(name, 1, k, 2)) for k in (1, 2)} == {"old-1", "old-2"}
    status, text = await new[0].get("/readyz")
    assert (status, text.split(" (")[0]) == (503, "waiting for shards of n=2 to stop")

    await new[0].wait_ready(timeout=60)
    # It went ahead because the killed workers' Leases expired, not because anyone released them.
    assert {lease_holder(app["kubeconfig"], step_role(name, 1, k, 2)) for k in (1, 2)} == {"old-1", "old-2"}
    assert lease_holder(app["kubeconfig"], step_role(name, 1, 1, 1)) == "new-1"
    runs = [await client.trigger(f"after-kill-{i}") for i in range(4)]
    assert {t.triaged_by for t in await triaged(client, runs)} == {"new-1"}
    for worker in (*new, system):
        code, _ = await worker.terminate()
        assert code == 0, worker.output()


def test_settle_heap_freezes_set_up_and_collects_the_young_generation_less_often() -> None:
    import gc

    from conveyor.cli._worker import GC_THRESHOLDS, settle_heap

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # Python's defaults (a worker run in this process earlier changed them)
        gc.unfreeze()
        settle_heap()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > 700
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_every_sharded_role_is_fenced_by_its_step_or_connector() -> None:
    from conveyor import Builder
    from conveyor._engine.roles import connector_role
    from conveyor.adapters.kubernetes import LeaseRoleScheduler
    from conveyor.adapters.memory import MemoryConnector

    b = Builder("fenced", Ticket, TicketStatus)
    triaged = TicketStatus.TRIAGED
    b.add_step(TicketStatus.OPENED, lambda run: triaged, triaged).with_options(parallel_count=2)
    b.add_connector("feed", MemoryConnector([]), lambda wf, event: None).with_options(parallel_count=3)
    roles = LeaseRoleScheduler()  # fence() and fenced() need no API server
    # The engine fences the shard roles of a scheduler that can fence when it builds the workflow.
    wf = b.build(MemoryStreamer(), MemoryRecordStore(), roles, timeout_store=MemoryTimeoutStore())
    sharded = [step_role("fenced", TicketStatus.OPENED, k, 2) for k in (1, 2)]
    sharded += [connector_role("feed", "fenced", k, 3) for k in (1, 2, 3)]
    assert set(sharded) <= set(wf.roles())
    # Fenced: not free to take before a first look at the Leases of other shard counts.
    assert {role: roles.fenced(role) for role in sharded} == dict.fromkeys(
        sharded, "checking for shards of another count"
    )
    assert all(roles.fenced(role) is None for role in wf.roles() if role not in sharded)
