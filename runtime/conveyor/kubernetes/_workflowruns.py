"""The WorkflowRun mirror: what makes a `conveyor.dev/v1alpha1` WorkflowRun do what it says. It is a process of the
workflow's own table (`add_workflowrun_mirror`), run by its system worker (`conveyor worker --system`), which has
both the user's code (to validate the object) and the record store: it holds a role of its own
(`{workflow}-workflowrun-sync-consumer`, a Lease like the others, through the workflow's role scheduler), shows in
`roles()`, the process states and the metrics, is restarted after a back-off when it fails, and every second
lists the WorkflowRuns of its namespace whose spec.workflow is this workflow:

- not triggered yet (no status.runID): the object is validated against the workflow's object type and startAt
  against its statuses (a failure is a Triggered=False condition, nothing triggered), then the run is triggered
  with the WorkflowRun's uid as run id, so a retried or restarted sync never triggers twice;
- the run as stored is mirrored into the status (run id, run state, status, timestamps, phase, conditions);
- a changed spec.state pauses, resumes, cancels or requests data deletion (an impossible change is a condition);
- a finished run's WorkflowRun is deleted ttlSecondsAfterFinished after the run last changed.

The holder of the role also publishes what the operator cannot compute, having no user code, into its Workflow's
status: the workflow's graph (mermaid) into status.graph when it takes the role, and the workflow's stranded runs
(what its stranded-runs check, run by the same system worker, counted last: `Workflow.stranded_runs()`) into
status.strandedRuns whenever they change, the field removed once there are none (see `conveyor.kubernetes`'s
`_stranded`), from where the operator shows the Workflow Degraded with reason StrandedRuns.

Postgres stays the source of truth: the status is patched only when what it mirrors changed. Runs are triggered
and steered through the workflow's `Client`, the one path every change of a run takes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conveyor._core.records import Record
from conveyor._core.runstate import RunState
from conveyor._engine.roles import ProcessInfo
from conveyor._engine.stranded import StrandedRuns
from conveyor._engine.workflow import Workflow
from conveyor.adapters.kubernetes._client import load_configuration
from conveyor.errors import (
    InvalidInput,
    InvalidObject,
    InvalidStatus,
    InvalidTransition,
    RecordNotFound,
    WorkflowInProgress,
)
from conveyor.kubernetes._conditions import MAX_CONDITION_MESSAGE, condition, conditions_by_type, format_time
from conveyor.kubernetes._resources import GROUP, VERSION, WORKFLOW_RUNS, WORKFLOWS
from conveyor.kubernetes._stranded import STRANDED_RUNS_FIELD, STRANDED_STATUSES_LIMIT

logger = logging.getLogger("conveyor.workflowruns")

INTERVAL = 1.0
ERROR_BACKOFF = 2.0
# Seconds before publishing the same stranded runs again after a failure (a missing Workflow is not retried every
# INTERVAL).
STRANDED_RETRY = 30.0
# The kind of the mirror's process in the workflow's table (`Workflow.processes()`).
MIRROR_KIND = "workflowrun-mirror"

_PHASES = {
    RunState.UNKNOWN: "Pending",
    RunState.INITIATED: "Pending",
    RunState.RUNNING: "Running",
    RunState.PAUSED: "Paused",
    RunState.COMPLETED: "Succeeded",
    RunState.CANCELLED: "Cancelled",
    RunState.REQUESTED_DATA_DELETED: "DataDeleted",
    RunState.DATA_DELETED: "DataDeleted",
}
# Finished for good: the WorkflowRun may go after its TTL (a requested deletion waits until it is done).
_DONE = frozenset({RunState.COMPLETED, RunState.CANCELLED, RunState.DATA_DELETED})


def sync_role(workflow_name: str) -> str:
    return f"{workflow_name}-workflowrun-sync-consumer"


def run_state_name(state: RunState) -> str:
    """The CRD's name of a run state: the reference's label without spaces (RequestedDataDeleted)."""
    return state.label.replace(" ", "")


class WorkflowRunMirror:
    """Mirrors `namespace`'s WorkflowRuns of `wf` every `interval` seconds while its process holds the mirror's
    role; made and added to the workflow's table by `add_workflowrun_mirror`."""

    def __init__(
        self,
        wf: Workflow[Any, Any],
        namespace: str,
        *,
        interval: float = INTERVAL,
        kubeconfig: str | None = None,
        workflow_object: str | None = None,
    ) -> None:
        self.wf = wf
        self.client = wf.client
        self.namespace = namespace
        self.interval = interval
        self.kubeconfig = kubeconfig
        self.role = sync_role(wf.name)
        # The Workflow object whose status gets the graph (the operator names it in $CONVEYOR_WORKFLOW).
        self.workflow_object = workflow_object or wf.name
        self._api: client.CustomObjectsApi | None = None
        self._failures = _Failures()
        # status.strandedRuns as this holder of the role last published it (None: not yet), and when to try again
        # the counts it failed to publish.
        self._stranded: list[dict[str, Any]] | None = None
        self._stranded_retry: tuple[list[dict[str, Any]], datetime] | None = None

    async def run(self) -> None:
        """The process's body, while the role is held: publish the graph, then mirror until cancelled. The API
        server failing (no CRDs yet: 404; a restart: refused connections) does not fail the process: it is said
        once, with its message, and again only when it changes (see `_Failures`); the mirror goes on trying."""
        configuration = await asyncio.to_thread(load_configuration, self.kubeconfig, None)
        api_client = client.ApiClient(configuration)
        self._api = client.CustomObjectsApi(api_client)
        published = False
        try:
            logger.info("role %s acquired: syncing WorkflowRuns of %s", self.role, self.wf.name)
            while True:
                if not published:
                    published = await self.publish_graph()
                try:
                    await self.sync_all()
                except _API_FAILURES as e:
                    self._failures.failed("listing", f"listing WorkflowRuns in {self.namespace}", e)
                else:
                    self._failures.recovered("listing", f"listing WorkflowRuns in {self.namespace}")
                await self.publish_stranded()
                await self.wf.clock.sleep(self.interval)
        finally:
            self._api = None
            self._stranded = self._stranded_retry = None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(api_client.close)

    async def publish_graph(self) -> bool:
        """Put the workflow's mermaid graph into its Workflow's status.graph (a merge patch of that field only, so
        the operator's fields stay, and the operator's patches, which never name it, keep it). Done by each new
        holder of the role, and tried again each round until it is done; a failure (no such Workflow, no
        permission, the API server away) is logged, never fatal: the graph is for humans, the runs do not depend
        on it. True if it was published."""
        what = f"publishing the graph into Workflow {self.namespace}/{self.workflow_object}"
        try:
            await self._patch_workflow_status({"graph": self.wf.mermaid()})
        except _API_FAILURES as e:
            self._failures.failed("graph", what, e)
            return False
        self._failures.recovered("graph", what)
        return True

    async def publish_stranded(self) -> bool:
        """Put what the workflow's stranded-runs check counted last into its Workflow's status.strandedRuns (a
        merge patch of that field only; null removes it once there are none), when it differs from what this
        holder of the role published last. Nothing while the check has not counted in this process. A failure (no
        such Workflow, no permission) is logged once until it changes and tried again after STRANDED_RETRY seconds,
        or at once for other counts; True if the field is now as counted."""
        found = self.wf.stranded_runs()
        if found is None:
            return False
        entries = stranded_fields(found)
        if entries == self._stranded:
            return True
        now = self.wf.clock.now()
        if self._stranded_retry is not None and self._stranded_retry[0] == entries and now < self._stranded_retry[1]:
            return False
        what = f"publishing the stranded runs into Workflow {self.namespace}/{self.workflow_object}"
        try:
            await self._patch_workflow_status({STRANDED_RUNS_FIELD: entries or None})
        except _API_FAILURES as e:
            self._failures.failed("stranded", what, e)
            self._stranded_retry = (entries, now + timedelta(seconds=STRANDED_RETRY))
            return False
        self._failures.recovered("stranded", what)
        self._stranded, self._stranded_retry = entries, None
        return True

    async def _patch_workflow_status(self, fields: dict[str, Any]) -> None:
        """A merge patch of these fields of the Workflow's status and nothing else: the operator's fields stay, and
        the operator's patches, which never name these, keep them."""
        api = self._require_api()
        await asyncio.to_thread(
            api.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            self.namespace,
            WORKFLOWS,
            self.workflow_object,
            {"status": fields},
            _content_type="application/merge-patch+json",
        )

    def _require_api(self) -> client.CustomObjectsApi:
        if self._api is None:
            raise RuntimeError("the WorkflowRun sync is not running")
        return self._api

    async def sync_all(self) -> None:
        api = self._require_api()
        listing = await asyncio.to_thread(
            api.list_namespaced_custom_object, GROUP, VERSION, self.namespace, WORKFLOW_RUNS
        )
        for item in cast(dict[str, Any], listing).get("items", []):
            if (item.get("spec") or {}).get("workflow") != self.wf.name:
                continue
            if item["metadata"].get("deletionTimestamp"):
                continue
            name = item["metadata"]["name"]
            try:
                await self.sync(item)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # A failing store fails every WorkflowRun every round: each is said once until its failure changes.
                self._failures.failed(f"run/{name}", f"WorkflowRun {self.namespace}/{name}: sync failed, retried", e)
            else:
                self._failures.recovered(f"run/{name}", f"WorkflowRun {self.namespace}/{name}: sync")

    async def sync(self, item: Mapping[str, Any]) -> None:
        """One WorkflowRun: trigger it if it was not, apply a changed spec.state, mirror the run, delete after TTL."""
        meta = item["metadata"]
        spec: Mapping[str, Any] = item.get("spec") or {}
        old: dict[str, Any] = dict(item.get("status") or {})
        name, generation = meta["name"], meta.get("generation")
        status = _Status(old, generation, self.wf.clock.now())
        run_id = old.get("runID")
        record: Record | None = None
        applied_generation = old.get("observedGeneration")
        if not run_id:
            run_id = await self._trigger(spec, meta["uid"], status)
            if run_id is None:
                await self._patch(name, old, status.build())
                return
            status.fields["runID"] = run_id
            status.set("Triggered", "True", "Triggered", f"run {run_id} triggered")
            applied_generation = None  # the spec's state is applied to the new run below
        try:
            record = await self.client.store.lookup(run_id)
        except RecordNotFound:
            status.set("Triggered", "False", "RunNotFound", f"run {run_id} is not in the record store")
            await self._patch(name, old, status.build())
            return
        if applied_generation != generation:
            record = await self._apply_state(str(spec.get("state") or "Running"), record, status)
        self._mirror(record, status)
        await self._patch(name, old, status.build())
        ttl = spec.get("ttlSecondsAfterFinished")
        if (
            record.run_state in _DONE
            and isinstance(ttl, int)
            and (self.wf.clock.now() - record.updated_at).total_seconds() >= ttl
        ):
            await self._delete(name, meta["uid"])

    async def _trigger(self, spec: Mapping[str, Any], uid: str, status: _Status) -> str | None:
        """Validate and trigger; the run id, or None with the reason set as a condition."""
        wf = self.wf
        foreign_id = str(spec.get("foreignID") or "")
        start_at = None
        start_name = spec.get("startAt")
        if start_name is not None:
            try:
                start_at = wf.spec.status_type[str(start_name)]
            except KeyError:
                names = ", ".join(m.name for m in wf.spec.status_type)
                status.fail(
                    "InvalidStartAt", f"startAt: {start_name!r} is not a status of workflow {wf.name!r} ({names})"
                )
                return None
        initial_value = None
        obj = spec.get("object")
        if obj is not None:
            try:
                initial_value = wf.spec.codec.coerce(obj, "object")
            except InvalidObject as e:
                status.fail("InvalidObject", str(e))
                return None
        try:
            return await self.client.trigger(
                wf.spec, foreign_id, initial_value=initial_value, start_at=start_at, run_id=uid
            )
        except WorkflowInProgress as e:
            status.set("Triggered", "False", "RunInProgress", f"{e}; triggered once it finishes")
            status.fields["phase"] = "Pending"
        except InvalidStatus as e:
            status.fail("InvalidStartAt", str(e))
        except InvalidObject as e:
            status.fail("InvalidObject", str(e))
        except InvalidInput as e:
            status.fail("InvalidInput", str(e))
        return None

    async def _apply_state(self, desired: str, record: Record, status: _Status) -> Record:
        """Make the run what spec.state asks (once per generation); the run as it is afterwards."""
        runs, state, run_id = self.client, record.run_state, record.run_id
        try:
            if desired == "Paused" and state is not RunState.PAUSED:
                await runs.pause(run_id, "WorkflowRun spec.state Paused")
            elif desired == "Running" and state is RunState.PAUSED:
                await runs.resume(run_id)
            elif desired == "Cancelled" and state is not RunState.CANCELLED:
                await runs.cancel(run_id, "WorkflowRun spec.state Cancelled")
            elif desired == "DataDeleted" and state not in (RunState.REQUESTED_DATA_DELETED, RunState.DATA_DELETED):
                await runs.delete_data(run_id, "WorkflowRun spec.state DataDeleted")
            status.set("StateApplied", "True", "StateApplied", f"spec.state {desired}")
        except InvalidTransition as e:
            status.set("StateApplied", "False", "InvalidTransition", f"spec.state {desired}: {e}")
        status.fields["observedGeneration"] = status.generation
        return await runs.store.lookup(run_id)

    def _mirror(self, record: Record, status: _Status) -> None:
        state = record.run_state
        try:
            status_name = self.wf.spec.status_type(record.status).name
        except ValueError:
            status_name = str(record.status)
        status.fields.update(
            runState=run_state_name(state),
            status=status_name,
            phase=_PHASES[state],
            createdAt=format_time(record.created_at),
            updatedAt=format_time(record.updated_at),
            finishedAt=format_time(record.updated_at) if state.finished() else None,
        )
        if state.finished():
            status.set("Finished", "True", run_state_name(state), f"run {record.run_id} is {state.label.lower()}")
        else:
            status.set("Finished", "False", run_state_name(state), f"run {record.run_id} is {state.label.lower()}")

    async def _patch(self, name: str, old: Mapping[str, Any], new: dict[str, Any]) -> None:
        if all(old.get(k) == v for k, v in new.items()):
            return
        api = self._require_api()
        await asyncio.to_thread(
            api.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            self.namespace,
            WORKFLOW_RUNS,
            name,
            {"status": new},
            _content_type="application/merge-patch+json",
        )

    async def _delete(self, name: str, uid: str) -> None:
        api = self._require_api()
        try:
            await asyncio.to_thread(
                api.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                WORKFLOW_RUNS,
                name,
                body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
            )
        except ApiException as e:
            if e.status not in (404, 409):
                raise
            return
        logger.info("WorkflowRun %s/%s deleted: its run finished ttlSecondsAfterFinished ago", self.namespace, name)


def stranded_fields(found: tuple[StrandedRuns, ...]) -> list[dict[str, Any]]:
    """Stranded runs as status.strandedRuns holds them: per status its name (or number, when the code has no such
    status), number, count and the oldest last update; at most STRANDED_STATUSES_LIMIT statuses, the largest
    counts, ordered by status."""
    kept = sorted(found, key=lambda s: (-s.count, s.status))[:STRANDED_STATUSES_LIMIT]
    return [
        {"status": s.label, "value": s.status, "count": s.count, "since": format_time(s.oldest)}
        for s in sorted(kept, key=lambda s: s.status)
    ]


def add_workflowrun_mirror(
    wf: Workflow[Any, Any],
    namespace: str,
    *,
    interval: float = INTERVAL,
    kubeconfig: str | None = None,
    workflow_object: str | None = None,
) -> ProcessInfo:
    """Add the WorkflowRun mirror of `namespace` to `wf`'s processes (before `wf.run()`): it holds its own role
    through the workflow's role scheduler and is supervised like the workflow's other processes."""
    mirror = WorkflowRunMirror(wf, namespace, interval=interval, kubeconfig=kubeconfig, workflow_object=workflow_object)
    return wf.add_process(
        mirror.role, mirror.run, name="workflowrun-sync-consumer", kind=MIRROR_KIND, err_backoff=ERROR_BACKOFF
    )


def _api_failures() -> tuple[type[BaseException], ...]:
    # The API server answering with an error, or not answering at all (urllib3 gives up after its retries).
    import urllib3.exceptions

    return (ApiException, urllib3.exceptions.HTTPError, OSError)


_API_FAILURES = _api_failures()


class _Failures:
    """What keeps failing, each said once with its message and again only when the message changes or after it
    recovered; the traceback only when the logger is debugging. A failure that repeats every round (the API
    server without conveyor's CRDs answers 404 every second) is one line, not sixty a minute."""

    def __init__(self) -> None:
        self._said: dict[str, str] = {}

    def failed(self, key: str, what: str, error: BaseException) -> None:
        message = _message(error)
        if self._said.get(key) == message:
            logger.debug("%s: %s (again)", what, message)
            return
        self._said[key] = message
        logger.warning("%s: %s", what, message, exc_info=logger.isEnabledFor(logging.DEBUG))

    def recovered(self, key: str, what: str) -> None:
        if self._said.pop(key, None) is not None:
            logger.info("%s: working again", what)


def _message(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    text = str(error).strip().splitlines()
    # urllib3's MaxRetryError repeats the pool's repr; its reason is what went wrong.
    reason = getattr(error, "reason", None)
    if reason is not None and not isinstance(reason, str):
        text = str(reason).strip().splitlines() or text
    # A connection's repr holds its address in memory, new each round: left out, the same failure reads the same.
    said = _OBJECT_REPR.sub("", text[0] if text else "")
    return f"{type(error).__name__}: {said}"[:500]


_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>:?\s*")


class _Status:
    """The status being built: fields and conditions (meta/v1 Condition semantics, from `condition`)."""

    def __init__(self, old: Mapping[str, Any], generation: int | None, now: datetime) -> None:
        self.generation = generation
        self.now = now
        self.fields: dict[str, Any] = {}
        self._old = conditions_by_type(old.get("conditions"))
        self._conditions = dict(self._old)

    def set(self, type_: str, status: str, reason: str, message: str) -> None:
        self._conditions[type_] = condition(
            type_,
            status,
            reason,
            message,
            previous=self._old,
            generation=self.generation,
            max_message=MAX_CONDITION_MESSAGE,
            now=self.now,
        )

    def fail(self, reason: str, message: str) -> None:
        self.set("Triggered", "False", reason, message)
        self.fields["phase"] = "Failed"
        self.fields["observedGeneration"] = self.generation

    def build(self) -> dict[str, Any]:
        found = dict(self.fields)
        if self._conditions != self._old or self._conditions:
            found["conditions"] = sorted(self._conditions.values(), key=lambda c: str(c["type"]))
        return found
