"""WorkflowRuns against the real services: `conveyor worker --system` (a subprocess, in a namespace of this module's
own) triggers each WorkflowRun of its workflow exactly once (run id = the WorkflowRun's uid, even across a SIGKILL),
mirrors the run into its status, refuses a bad object with a condition, pauses and resumes on spec.state, and
deletes a finished one after ttlSecondsAfterFinished; the operator marks a WorkflowRun whose Workflow is missing.
The steps run in the test process on the same Postgres and Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conveyor import RunState, Workflow
from conveyor.adapters.memory import MemoryRoleScheduler
from conveyor.cli._worker import step_processes
from conveyor.errors import InvalidInput, RecordNotFound
from tests.cli.worker_app import Ticket, TicketStatus, make
from tests.helpers import (
    CLI_APPS,
    CONVEYOR,
    GROUP,
    VERSION,
    WORKER_MANIFEST,
    WORKER_PARTITIONS,
    eventually,
    free_port,
    workflow,
)

PLURAL = "workflowruns"


class Harness:
    """This test's workflow: its system workers (subprocesses), its steps (in-process) and its WorkflowRuns."""

    def __init__(self, api: client.ApiClient, namespace: str, env: dict[str, str], log_dir: Path) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.env = env
        self.name = env["WORKER_APP_NAME"]
        self.log_dir = log_dir
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.workflows: list[Workflow[Ticket, TicketStatus]] = []
        self.client: Workflow[Ticket, TicketStatus] | None = None

    def start_system(self, identity: str) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"system-{identity}.log"
        args = [str(CONVEYOR), "worker", "worker_app:builder", "--path", str(CLI_APPS), "--system"]
        args += [
            "--steps",
            json.dumps(WORKER_MANIFEST),
            "--partitions",
            str(WORKER_PARTITIONS),
            "--lease-duration",
            "3",
        ]
        args += ["--host", "127.0.0.1", "--port", str(free_port())]
        with log.open("w") as out:
            process = subprocess.Popen(
                args, env={**self.env, "POD_NAME": identity}, stdout=out, stderr=subprocess.STDOUT, cwd=self.log_dir
            )
        self.processes.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for _, log in self.processes)

    async def build(self, roles: list[str] | None) -> Workflow[Ticket, TicketStatus]:
        from conveyor.adapters.kafka import KafkaStreamer
        from conveyor.adapters.postgres import PostgresRecordStore

        wf = make(self.name).build(
            KafkaStreamer(self.env["CONVEYOR_KAFKA"], partitions=WORKER_PARTITIONS),
            PostgresRecordStore(self.env["CONVEYOR_PG_DSN"]),
            MemoryRoleScheduler(),
        )
        await wf.run(roles=[p.role for p in step_processes(wf)] if roles is None else roles)
        self.workflows.append(wf)
        return wf

    async def start_steps(self) -> None:
        await self.build(None)

    @property
    def store(self) -> Workflow[Ticket, TicketStatus]:
        assert self.client is not None
        return self.client

    async def create(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowRun",
            "metadata": {"name": name},
            "spec": {"workflow": self.name, **spec},
        }
        created = await asyncio.to_thread(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, body
        )
        # The client types a custom object as `object`; the API server answers with the object's JSON.
        return cast(dict[str, Any], created)

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            found = cast(
                dict[str, Any],
                await asyncio.to_thread(
                    self.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, name
                ),
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return found

    async def patch_spec(self, name: str, **spec: Any) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )

    async def status(self, name: str) -> dict[str, Any]:
        found = await self.get(name)
        assert found is not None, name
        status: dict[str, Any] = found.get("status") or {}
        return status

    async def until(self, check: Callable[[], Awaitable[Any]], timeout: float = 45) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = await check()
                if last:
                    return last
            except AssertionError as e:
                last = e
            for process, log in self.processes:
                code = process.poll()
                assert code is None or code < 0, f"{log.name} exited {code}:\n{self.logs()}"
            if time.monotonic() > deadline:
                pytest.fail(f"not true within {timeout}s: {last!r}\n{self.logs()}")
            await asyncio.sleep(0.2)

    async def until_phase(self, name: str, phase: str, timeout: float = 45) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            status = await self.status(name)
            return status if status.get("phase") == phase else None

        found: dict[str, Any] = await self.until(reached, timeout)
        return found


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c.get("message", "")) for c in status.get("conditions") or []}


@pytest.fixture
async def runs(
    api: client.ApiClient, namespace: str, pg_dsn: str, kafka_bootstrap: str, kubeconfig: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    env = {
        **os.environ,
        "WORKER_APP_NAME": f"wr-app-{uuid.uuid4().hex[:8]}",
        "CONVEYOR_PG_DSN": pg_dsn,
        "CONVEYOR_KAFKA": kafka_bootstrap,
        "KUBECONFIG": kubeconfig,
        "CONVEYOR_NAMESPACE": namespace,
    }
    env.pop("CONVEYOR_STEPS", None)
    harness = Harness(api, namespace, env, tmp_path)
    harness.client = await harness.build([])
    try:
        yield harness
    finally:
        for process, _ in harness.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        for wf in harness.workflows:
            await wf.stop(grace=1)


async def only_run(h: Harness, foreign_id: str) -> Any:
    found = [r for r in await h.store.store.list(h.name, limit=100) if r.foreign_id == foreign_id]
    assert len(found) == 1, found
    return found[0]


async def test_a_workflowrun_triggers_one_run_and_mirrors_it_to_the_end(runs: Harness) -> None:
    runs.start_system("system")
    await runs.start_steps()
    created = await runs.create("ticket-a", foreignID="ticket-a", object={"id": "a"})
    status = await runs.until_phase("ticket-a", "Succeeded")
    uid = created["metadata"]["uid"]
    assert status["runID"] == uid
    assert status["runState"] == "Completed"
    assert status["status"] == "CLOSED"
    assert status["observedGeneration"] == 1
    assert {"createdAt", "updatedAt", "finishedAt"} <= status.keys()
    found = conditions(status)
    assert found["Triggered"][:2] == ("True", "Triggered")
    assert found["Finished"][:2] == ("True", "Completed")
    run = await only_run(runs, "ticket-a")
    assert run.run_id == uid
    assert run.run_state is RunState.COMPLETED
    stored = await runs.store.get_run(uid)
    assert stored.object.id == "a"
    assert stored.status is TicketStatus.CLOSED
    # Nothing changes any more: the status stays as it is (patched only on change).
    await asyncio.sleep(2)
    assert (await runs.status("ticket-a")) == status


async def test_a_killed_system_worker_never_triggers_twice(runs: Harness) -> None:
    first = runs.start_system("first")
    created = await runs.create("ticket-b", foreignID="ticket-b", object={"id": "b"})
    uid = created["metadata"]["uid"]

    async def triggered() -> str | None:
        run_id: str | None = (await runs.status("ticket-b")).get("runID")
        return run_id

    assert await runs.until(triggered) == uid
    first.kill()  # SIGKILL mid-way: the run is still at OPENED (no steps run yet), its Lease is left to expire
    first.wait(10)
    runs.start_system("second")
    await runs.start_steps()
    status = await runs.until_phase("ticket-b", "Succeeded")
    assert status["runID"] == uid
    assert status["runState"] == "Completed"
    assert (await only_run(runs, "ticket-b")).run_id == uid


async def test_a_bad_object_or_start_is_a_condition_and_triggers_nothing(runs: Harness) -> None:
    runs.start_system("system")
    await runs.create("ticket-c", foreignID="ticket-c", object={"id": ["not", "a", "string"]})
    await runs.create("ticket-c2", foreignID="ticket-c2", startAt="SHIPPED")
    status = await runs.until_phase("ticket-c", "Failed")
    triggered = conditions(status)["Triggered"]
    assert triggered[:2] == ("False", "InvalidObject")
    assert "object.id" in triggered[2]
    assert "runID" not in status
    status = await runs.until_phase("ticket-c2", "Failed")
    triggered = conditions(status)["Triggered"]
    assert triggered[:2] == ("False", "InvalidStartAt")
    assert "'SHIPPED' is not a status of workflow" in triggered[2]
    await asyncio.sleep(2)
    for foreign_id in ("ticket-c", "ticket-c2"):
        with pytest.raises(RecordNotFound):
            await runs.store.store.latest(runs.name, foreign_id)


async def test_spec_state_pauses_and_resumes_the_run(runs: Harness) -> None:
    runs.start_system("system")
    created = await runs.create("ticket-d", foreignID="ticket-d")
    uid = created["metadata"]["uid"]
    await runs.until_phase("ticket-d", "Pending")  # triggered, nobody runs its steps yet
    await runs.patch_spec("ticket-d", state="Paused")
    status = await runs.until_phase("ticket-d", "Paused")
    assert (await runs.store.get_run(uid)).run_state is RunState.PAUSED
    assert status["runState"] == "Paused"
    assert status["observedGeneration"] == 2
    assert conditions(status)["StateApplied"][:2] == ("True", "StateApplied")
    await runs.patch_spec("ticket-d", state="Running")
    status = await runs.until_phase("ticket-d", "Running")
    assert (await runs.store.get_run(uid)).run_state is RunState.RUNNING
    assert status["observedGeneration"] == 3
    await runs.start_steps()
    await runs.until_phase("ticket-d", "Succeeded")
    # A finished run cannot be paused: a condition says why, the run is unchanged.
    await runs.patch_spec("ticket-d", state="Paused")

    async def refused() -> tuple[str, str, str] | None:
        found = conditions(await runs.status("ticket-d")).get("StateApplied")
        return found if found is not None and found[1] == "InvalidTransition" else None

    assert "cannot move from COMPLETED to PAUSED" in (await runs.until(refused))[2]
    assert (await runs.store.get_run(uid)).run_state is RunState.COMPLETED
    assert (await runs.status("ticket-d"))["phase"] == "Succeeded"


async def test_a_finished_workflowrun_is_deleted_after_its_ttl(runs: Harness) -> None:
    runs.start_system("system")
    await runs.start_steps()
    created = await runs.create("ticket-e", foreignID="ticket-e", ttlSecondsAfterFinished=1)

    async def gone() -> bool:
        return await runs.get("ticket-e") is None

    await runs.until(gone)
    # Postgres keeps the run.
    run = await only_run(runs, "ticket-e")
    assert run.run_id == created["metadata"]["uid"]
    assert run.run_state is RunState.COMPLETED


def test_a_workflowrun_of_an_unknown_workflow_is_marked_by_the_operator(
    api: client.ApiClient, namespace: str, operator: None
) -> None:
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": "orphan"},
        "spec": {"workflow": "no-such-workflow", "foreignID": "orphan-1"},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def marked() -> dict[str, Any] | None:
        found = cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "orphan"))
        status: dict[str, Any] = found.get("status") or {}
        return status if "Triggered" in conditions(status) else None

    status = eventually(marked)
    triggered = conditions(status)["Triggered"]
    assert triggered[:2] == ("False", "WorkflowNotFound")
    assert "no Workflow 'no-such-workflow'" in triggered[2]
    assert "runID" not in status
    found = cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "orphan"))
    assert not found["metadata"].get("finalizers")


async def test_the_system_worker_publishes_the_graph_and_the_operator_keeps_it(
    runs: Harness, api: client.ApiClient, operator: None
) -> None:
    from conveyor._engine.visualise import mermaid

    steps = {"OPENED": {"parallelCount": 1}, "TRIAGED": {"parallelCount": 1}}
    await asyncio.to_thread(
        runs.custom.create_namespaced_custom_object,
        GROUP,
        VERSION,
        runs.namespace,
        "workflows",
        workflow(runs.name, steps),
    )
    graph = mermaid(make(runs.name).spec())

    async def workflow_status() -> dict[str, Any]:
        found = cast(
            dict[str, Any],
            await asyncio.to_thread(
                runs.custom.get_namespaced_custom_object, GROUP, VERSION, runs.namespace, "workflows", runs.name
            ),
        )
        status: dict[str, Any] = found.get("status") or {}
        return status

    async def published() -> dict[str, Any] | None:
        status = await workflow_status()
        return status if status.get("graph") == graph and status.get("conditions") else None

    runs.start_system("system")
    status = await runs.until(published)
    assert "OPENED" in status["graph"] and "TRIAGED" in status["graph"]
    # The operator's next status (a new generation: two shards of OPENED) keeps the graph.
    await asyncio.to_thread(
        runs.custom.patch_namespaced_custom_object,
        GROUP,
        VERSION,
        runs.namespace,
        "workflows",
        runs.name,
        {"spec": {"steps": {"OPENED": {"parallelCount": 2}}}},
        _content_type="application/merge-patch+json",
    )

    async def reconciled() -> dict[str, Any] | None:
        status = await workflow_status()
        return status if status.get("observedGeneration") == 2 else None

    status = await runs.until(reconciled)
    assert status["graph"] == graph
    assert {s["name"]: s["desiredShards"] for s in status["steps"]} == {"OPENED": 2, "TRIAGED": 1}


def test_the_mirror_is_a_process_of_the_workflows_table_run_by_the_system_worker() -> None:
    from conveyor.adapters.memory import MemoryRecordStore, MemoryStreamer
    from conveyor.cli._worker import choose_roles
    from conveyor.kubernetes import add_workflowrun_mirror

    wf = make(f"mirror-{uuid.uuid4().hex[:6]}").build(MemoryStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    info = add_workflowrun_mirror(wf, "orders")
    assert info.role == f"{wf.name}-workflowrun-sync-consumer" and info.kind == "workflowrun-mirror"
    assert info in wf.processes() and info.role in wf.roles()
    assert info.role in choose_roles(wf, None, None, True)
    assert info.role not in choose_roles(wf, "OPENED", 1, False)
    with pytest.raises(InvalidInput, match="role"):
        add_workflowrun_mirror(wf, "orders")
