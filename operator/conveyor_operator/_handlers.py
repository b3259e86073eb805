"""The kopf handlers: when a Workflow is created, changed or found at start-up, whenever one of the Deployments
it owns changes (its pods became ready, someone deleted or edited it), when one of its workers' pods says
something new against it (its code does not match the manifest, it crash-loops, or it stopped saying so), and when
its system worker publishes other stranded runs into its status.strandedRuns, converge that Workflow. WorkflowRuns
are the workflow's system worker's (the WorkflowRun mirror of conveyor.kubernetes); the operator only marks one
whose Workflow is missing.

Importing this module registers the handlers with kopf's default registry (that is how kopf works); `main` and
the tests import it, nothing else should.

Settings, chosen against kopf's known pitfalls (see the operator notes):
- watches end server-side after a minute and are reopened, and a stream silent for longer than that is
  considered dead, so a broken connection never leaves the operator a zombie;
- handler progress and the diff base live in annotations under conveyor.dev/, never in `status`, which is ours
  and structural (the API server would prune kopf's fields there and kopf would keep re-patching);
- no finalizers: every child is an owned object the garbage collector removes, so there are no deletion handlers
  and no timers or daemons (kopf puts a finalizer on objects that have those);
- kopf's own "handler succeeded" chatter is not posted as Kubernetes Events; the Events are what the operator did.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from conveyor.kubernetes import (
    GROUP,
    VERSION,
    WORKFLOW_RUNS,
    WORKFLOWS,
    condition,
    conditions_by_type,
    stranded_entries,
)
from conveyor_operator._login import in_cluster, reach_of, traced_session
from conveyor_operator._metrics import reconciling
from conveyor_operator._names import MANAGED_BY, MANAGER, WORKFLOW
from conveyor_operator._reconcile import Report, read_workflow, reconcile
from conveyor_operator._status import container_said

PREFIX = "conveyor.dev"
# Transient API errors (conflicts, 5xx, throttling) are retried by kopf after this many seconds.
RETRY_DELAY = 5.0
WORKFLOW_NOT_FOUND = "WorkflowNotFound"


def _api_client() -> client.ApiClient:
    """Credentials the standard way: the pod's service account in a cluster, else $KUBECONFIG or ~/.kube/config."""
    configuration = client.Configuration()
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            # $KUBECONFIG read now: the client's own default was read when it was imported.
            path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
            config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as e:
        raise kopf.PermanentError(f"no Kubernetes credentials: {e}") from None
    return client.ApiClient(configuration)


def configure(settings: kopf.OperatorSettings) -> None:
    """The operator's kopf settings (also used by the tests' in-process operator)."""
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.watching.connect_timeout = 10
    settings.watching.inactivity_timeout = 75
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.posting.level = logging.WARNING
    # Only the workers' pods, selected by the API server: watching every pod of a cluster to filter them here
    # would cost the operator memory and bandwidth in proportion to the cluster, not to its Workflows.
    settings.watching.label_selectors["v1", "pods"] = f"{MANAGED_BY}={MANAGER},{WORKFLOW}"
    settings.execution.max_workers = 16


@kopf.on.login()
async def _login(memo: kopf.Memo, **kwargs: Any) -> kopf.AiohttpSession | None:
    # kopf's readers of the service account and of $KUBECONFIG (read at login, so a changed variable counts). In a
    # pod, kopf goes where the Lease and the operator's client go, not to a DNS name (see the module _login).
    account = kopf.login_with_service_account(**kwargs)
    info = in_cluster(account, os.environ) if account is not None else kopf.login_with_kubeconfig(**kwargs)
    # Async, so that the session is made in kopf's event loop, which it is bound to.
    return None if info is None else traced_session(info, reach_of(memo))


@kopf.on.startup()
def _startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    memo.api = _api_client()


@kopf.on.cleanup()
def _cleanup(memo: kopf.Memo, **_: Any) -> None:
    api = memo.get("api")
    if api is not None:
        api.close()


def _reporter(workflow: Mapping[str, Any]) -> Report:
    def report(type_: str, reason: str, message: str) -> None:
        kopf.event(kopf.Body(cast(kopf.RawBody, workflow)), type=type_, reason=reason, message=message)

    return report


def _converge(api: client.ApiClient, namespace: str, name: str) -> None:
    workflow = read_workflow(api, namespace, name)
    if workflow is not None:
        reconcile(api, workflow, _reporter(workflow))


@kopf.on.resume(GROUP, VERSION, WORKFLOWS)
@kopf.on.create(GROUP, VERSION, WORKFLOWS)
@kopf.on.update(GROUP, VERSION, WORKFLOWS)
def workflow_changed(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    assert namespace is not None, "Workflows are namespaced"
    try:
        with reconciling("Workflow"):
            _converge(memo.api, namespace, name)
    except ApiException as e:
        raise kopf.TemporaryError(f"Kubernetes API: {e.status} {e.reason}", delay=RETRY_DELAY) from e


@kopf.on.event("apps", "v1", "deployments", labels={MANAGED_BY: MANAGER, WORKFLOW: kopf.PRESENT})
def deployment_changed(namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any) -> None:
    assert namespace is not None, "Deployments are namespaced"
    # Event handlers are not retried; the next event of the Deployment or the Workflow converges again.
    with reconciling("Workflow"):
        _converge(memo.api, namespace, labels[WORKFLOW])


# memo key: pod uid -> what its containers said (container_said) when its Workflow was last converged for it; only
# pods that say something are kept, and a deleted pod's entry goes with it.
SAID = "worker_pods_said"
Said = tuple[tuple[str, tuple[str, str]], ...]


def _said(status: Mapping[str, Any]) -> Said:
    found = ((str(c.get("name")), container_said(c)) for c in status.get("containerStatuses") or [])
    return tuple((name, said) for name, said in found if said is not None)


def _says_something_new(
    type: str | None, uid: str | None, status: Mapping[str, Any], memo: kopf.Memo, **_: Any
) -> bool:
    """The pod says something else against its Workflow than when it was last looked at: it began or stopped
    crash-looping, exited with other words, became ready, or went away saying something. Every other event of a
    worker pod (each step of a crash loop's back-off, run and exit, kopf's re-listing of every pod each minute)
    costs neither a converge nor kopf's "Handler succeeded" log line."""
    before: Said = memo.setdefault(SAID, {}).get(uid, ())
    return before != (() if type == "DELETED" else _said(status))


@kopf.on.event("", "v1", "pods", labels={MANAGED_BY: MANAGER, WORKFLOW: kopf.PRESENT}, when=_says_something_new)
def worker_pod_said(
    type: str | None,
    uid: str | None,
    status: Mapping[str, Any],
    namespace: str | None,
    labels: Mapping[str, str],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A worker's pod says something new (a CodeMismatch, a crash loop, or no longer either): converge its
    Workflow, whose status shows it."""
    assert namespace is not None, "Pods are namespaced"
    with reconciling("Workflow"):
        _converge(memo.api, namespace, labels[WORKFLOW])
    # Only once converged: an event that failed to converge is tried again by the pod's next event.
    said, known = _said(status), memo.setdefault(SAID, {})
    if said and type != "DELETED":
        known[uid] = said
    else:
        known.pop(uid, None)


# memo key: Workflow uid -> its status.strandedRuns when it was last converged for them; only Workflows that have
# some are kept.
STRANDED_SEEN = "workflows_stranded_seen"


def _stranded(type: str | None, status: Mapping[str, Any]) -> tuple[tuple[tuple[str, Any], ...], ...]:
    if type == "DELETED":
        return ()
    return tuple(tuple(sorted(each.items())) for each in stranded_entries(status))


def _stranded_changed(type: str | None, uid: str | None, status: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> bool:
    """The Workflow's system worker published other stranded runs than when it was last converged for them. The
    status patches of the operator itself, the graph and every other event of a Workflow cost nothing here (its
    spec's changes are workflow_changed's)."""
    return bool(memo.setdefault(STRANDED_SEEN, {}).get(uid, ()) != _stranded(type, status))


@kopf.on.event(GROUP, VERSION, WORKFLOWS, when=_stranded_changed)
def stranded_runs_changed(
    type: str | None,
    uid: str | None,
    status: Mapping[str, Any],
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """The system worker counted other stranded runs: converge the Workflow, whose Degraded condition shows them
    (StrandedRuns) until there are none."""
    assert namespace is not None, "Workflows are namespaced"
    if type != "DELETED":
        # Event handlers are not retried; an API failure leaves the memo as it was, so the next event tries again.
        with reconciling("Workflow"):
            _converge(memo.api, namespace, name)
    seen, known = _stranded(type, status), memo.setdefault(STRANDED_SEEN, {})
    if seen:
        known[uid] = seen
    else:
        known.pop(uid, None)


@kopf.on.event(GROUP, VERSION, WORKFLOW_RUNS)
def workflowrun_changed(
    type: str | None,
    namespace: str | None,
    name: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A WorkflowRun is triggered, mirrored and controlled by its workflow's system worker; the operator only says
    so when its spec.workflow names no Workflow in its namespace (no worker would ever pick it up). Idempotent:
    it patches only when the condition is not already there, and never once the run was triggered."""
    assert namespace is not None, "WorkflowRuns are namespaced"
    if type == "DELETED" or meta.get("deletionTimestamp") or status.get("runID"):
        return
    workflow = str(spec.get("workflow") or "")
    try:
        with reconciling("WorkflowRun"):
            _mark_orphan(memo.api, namespace, name, workflow, status, meta)
    except ApiException as e:
        # Event handlers are not retried: the next event of the WorkflowRun (or the operator's restart) is.
        logging.getLogger(__name__).warning(
            "WorkflowRun %s/%s: Kubernetes API: %s %s", namespace, name, e.status, e.reason
        )


def _mark_orphan(
    api: client.ApiClient,
    namespace: str,
    name: str,
    workflow: str,
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> None:
    if read_workflow(api, namespace, workflow) is not None:
        return
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Triggered"]
    current = next((c for c in status.get("conditions") or [] if c.get("type") == "Triggered"), None)
    if current is not None and current.get("reason") == WORKFLOW_NOT_FOUND:
        return
    orphan = condition(
        "Triggered",
        False,
        WORKFLOW_NOT_FOUND,
        f"no Workflow {workflow!r} in namespace {namespace}: nothing triggered",
        previous=conditions_by_type(status.get("conditions")),
        generation=meta.get("generation"),
    )
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        WORKFLOW_RUNS,
        name,
        {"status": {"phase": "Pending", "conditions": [*conditions, orphan]}},
        _content_type="application/merge-patch+json",
    )
