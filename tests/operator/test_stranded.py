"""Stranded runs on a Workflow, against the real API server: a system worker whose code dropped B's step counts the
runs the old code left at B, its WorkflowRun mirror publishes them into the Workflow's status.strandedRuns, and the
operator marks the Workflow Degraded with reason StrandedRuns and the counts in the message until they are moved
away, when the worker removes the field and Degraded goes back to AsExpected. The system worker's processes run in
the test (memory adapters, on a clock the test moves; the mirror on the real API server): there is no kubelet, so
the Workflow's pods never run and its shards stay unready throughout, which the stranded runs do not change. A
publication that fails (no such Workflow yet) is said once and tried again later, not every turn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conveyor import Client, ProcessKind
from conveyor._engine.options import STRANDED_CHECK_INTERVAL
from conveyor.kubernetes import WorkflowRunMirror, add_workflowrun_mirror
from conveyor.kubernetes._workflowruns import STRANDED_RETRY
from conveyor.testing import FakeClock
from tests.conftest import Memory
from tests.helpers import GROUP, VERSION, park_at_b, parked, unique, workflow


def conditions(found: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    status = found.get("status") or {}
    return {c["type"]: (c["status"], c["reason"], c.get("message", "")) for c in status.get("conditions") or []}


async def test_stranded_runs_mark_the_workflow_degraded_until_they_are_moved(
    api: client.ApiClient, namespace: str, operator: None, kubeconfig: str
) -> None:
    custom = client.CustomObjectsApi(api)
    name = unique("stranded")
    # The manifest of the new code: B's step is gone.
    await asyncio.to_thread(
        custom.create_namespaced_custom_object, GROUP, VERSION, namespace, "workflows", workflow(name, {"A": {}})
    )
    memory, clock = Memory(), FakeClock()
    run_ids = await park_at_b(memory.streamer, memory.store, memory.roles, name, clock)

    wf = parked(name, b_step=False).build(memory.streamer, memory.store, memory.roles, clock=clock)
    mirror = add_workflowrun_mirror(wf, namespace, kubeconfig=kubeconfig, workflow_object=name)
    check = next(p.role for p in wf.processes() if p.kind == ProcessKind.STRANDED_CHECK)
    await wf.run(roles=[check, mirror.role])

    async def get() -> dict[str, Any]:
        found = await asyncio.to_thread(
            custom.get_namespaced_custom_object, GROUP, VERSION, namespace, "workflows", name
        )
        return cast(dict[str, Any], found)

    async def until(check: Callable[[dict[str, Any]], bool], timeout: float = 45) -> dict[str, Any]:
        # Each look moves the clock one period on: the mirror takes its turn, and the check counts again.
        last: dict[str, Any] = {}
        try:
            async with asyncio.timeout(timeout):
                while not check(last := await get()):
                    clock.advance(STRANDED_CHECK_INTERVAL)
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"not within {timeout}s: {last.get('status')}") from None
        return last

    try:
        found = await until(lambda w: conditions(w).get("Degraded", ("",))[0] == "True")
        (entry,) = found["status"]["strandedRuns"]
        assert {k: entry[k] for k in ("status", "value", "count")} == {"status": "B", "value": 2, "count": 3}
        assert entry["since"].endswith("Z")
        degraded = conditions(found)["Degraded"]
        assert degraded[:2] == ("True", "StrandedRuns")
        assert degraded[2] == (
            "3 active runs at statuses that no step, callback or timeout of the running code moves: 3 at B (2) since "
            f"{entry['since']}; put the step back until they drain, or move them (conveyor runs fork)"
        )
        # The workers' state is as before: no pod runs here, so the shards are not ready.
        assert conditions(found)["Ready"][:2] == ("False", "ShardsNotReady")
        assert found["status"]["graph"] == wf.mermaid()

        # Moved away (paused, then cancelled: what a fork does to a paused run), one by one: the count follows.
        runs = Client(memory.store, wf)
        await runs.pause(run_ids[0], "to be moved")
        await runs.cancel(run_ids[0], "moved")
        found = await until(lambda w: "2 active runs" in conditions(w)["Degraded"][2])
        assert [e["count"] for e in found["status"]["strandedRuns"]] == [2]
        for run_id in run_ids[1:]:
            if (await runs.get(run_id)).run_state.name != "PAUSED":
                await runs.pause(run_id, "to be moved")
            await runs.cancel(run_id, "moved")
        found = await until(lambda w: conditions(w)["Degraded"][0] == "False")
        assert conditions(found)["Degraded"][1:] == ("AsExpected", "")
        assert "strandedRuns" not in found["status"]
    finally:
        await wf.stop()


def test_the_api_server_refuses_a_malformed_stranded_entry(api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api)
    name = unique("stranded-schema")
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "workflows", workflow(name, {"A": {}}))

    def patch(entry: dict[str, Any]) -> None:
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            "workflows",
            name,
            {"status": {"strandedRuns": [entry]}},
            _content_type="application/merge-patch+json",
        )

    patch({"status": "B", "value": 2, "count": 1, "since": "2026-12-03T07:00:00Z"})
    for bad in ({"status": "B", "value": 2, "count": 0}, {"status": "", "value": 2, "count": 1}, {"status": "B"}):
        with pytest.raises(ApiException) as refused:
            patch(bad)
        assert refused.value.status == 422, bad


async def test_a_publication_that_fails_is_said_once_and_tried_again_later(
    api: client.ApiClient, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    memory, clock = Memory(), FakeClock()
    name = unique("stranded-missing")
    await park_at_b(memory.streamer, memory.store, memory.roles, name, clock)
    wf = parked(name, b_step=False).build(memory.streamer, memory.store, memory.roles, clock=clock)
    check = next(p.role for p in wf.processes() if p.kind == ProcessKind.STRANDED_CHECK)
    await wf.run(roles=[check])
    try:
        async with asyncio.timeout(10):
            while wf.stranded_runs() is None:
                await asyncio.sleep(0.01)
        mirror = WorkflowRunMirror(wf, namespace)
        mirror._api = client.CustomObjectsApi(api)  # what its process's body sets up, on the test's API client
        caplog.set_level(logging.WARNING, logger="conveyor.workflowruns")
        # No Workflow of that name yet: said once, and not tried again every turn.
        for _ in range(3):
            assert not await mirror.publish_stranded()
        said = [r.getMessage() for r in caplog.records if r.name == "conveyor.workflowruns"]
        assert said == [f"publishing the stranded runs into Workflow {namespace}/{name}: 404 Not Found"]
        await asyncio.to_thread(
            client.CustomObjectsApi(api).create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "workflows",
            workflow(name, {"A": {}}),
        )
        assert not await mirror.publish_stranded()  # not yet: the retry is STRANDED_RETRY seconds on
        clock.advance(STRANDED_RETRY)
        assert await mirror.publish_stranded()
        found = cast(
            dict[str, Any],
            await asyncio.to_thread(
                client.CustomObjectsApi(api).get_namespaced_custom_object, GROUP, VERSION, namespace, "workflows", name
            ),
        )
        assert [(e["status"], e["count"]) for e in found["status"]["strandedRuns"]] == [("B", 3)]
        assert len([r for r in caplog.records if r.name == "conveyor.workflowruns"]) == 1
    finally:
        await wf.stop()
