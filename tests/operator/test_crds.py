"""The CRDs: generated from the models without drift, accepted and Established by the real API server, readable
with `kubectl explain`, and refusing bad manifests with a message that names the field (DESIGN §8)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conveyor_operator.crds import drifted
from tests.helpers import GROUP, ROOT, VERSION, create_custom, eventually, workflow

STEPS = {"CREATED": {"parallelCount": 2}, "PAID": {}}


def test_committed_crds_are_the_models() -> None:
    assert drifted() == [], "the CRDs drifted from the models: run python -m conveyor_operator.crds"


def test_crds_are_established_with_short_names_and_status(api: client.ApiClient, crds: list[dict[str, Any]]) -> None:
    extensions = client.ApiextensionsV1Api(api)
    workflows = extensions.read_custom_resource_definition(f"workflows.{GROUP}")
    runs = extensions.read_custom_resource_definition(f"workflowruns.{GROUP}")
    assert workflows.spec.names.short_names == ["cwf"]
    assert runs.spec.names.short_names == ["cwfr"]
    for crd in (workflows, runs):
        assert crd.spec.scope == "Namespaced"
        (version,) = crd.spec.versions
        assert version.name == VERSION
        assert version.subresources is not None and version.subresources.status is not None
        assert any(c.name == "Age" for c in version.additional_printer_columns or [])


def test_kubectl_explain_reads_well(kubectl: Callable[..., list[str]], crds: list[dict[str, Any]]) -> None:
    def explain(field: str) -> str:
        # The API server publishes a new CRD's OpenAPI schema a moment after it is Established.
        done = subprocess.run(kubectl("explain", field), capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    steps = eventually(lambda: explain("cwf.spec.steps"))
    assert "keyed by from-status name" in steps
    assert "parallelCount\t<integer>" in steps
    assert "Paused" in eventually(lambda: explain("cwfr.spec.state"))


def _refusal(api: client.ApiClient, namespace: str, body: dict[str, Any], plural: str = "workflows") -> str:
    with pytest.raises(ApiException) as refused:
        create_custom(api, namespace, body, plural)
    assert refused.value.status == 422
    return str(refused.value.body)


def _without(body: dict[str, Any], field: str) -> dict[str, Any]:
    del body["spec"][field]
    return body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            workflow("too-many-shards", {"CREATED": {"parallelCount": 5}}, partitions=4),
            ["spec.steps", "parallelCount must be at most spec.streamer.partitions"],
            id="parallelCount>partitions",
        ),
        pytest.param(_without(workflow("no-image", STEPS), "image"), ["spec.image", "Required value"], id="no-image"),
        pytest.param(
            workflow("bad-duration", {"CREATED": {"errBackOff": "30 seconds"}}),
            ["spec.steps.CREATED.errBackOff", "should match"],
            id="bad-duration",
        ),
        pytest.param(
            workflow("bad-step", {"created-2": {}}), ["spec.steps", "keys must be status names"], id="bad-step-name"
        ),
        pytest.param(
            workflow("bad-entrypoint", STEPS, entrypoint="orders/workflow.py"),
            ["spec.entrypoint", "should match"],
            id="bad-entrypoint",
        ),
        pytest.param(workflow("no-steps", {}), ["spec.steps", "should have at least 1 properties"], id="no-steps"),
        pytest.param(workflow("x" * 64, STEPS), ["metadata.name must be at most 63 characters"], id="long-name"),
    ],
)
def test_bad_workflows_are_refused_naming_the_field(
    api: client.ApiClient, namespace: str, body: dict[str, Any], expected: list[str]
) -> None:
    message = _refusal(api, namespace, body)
    for part in expected:
        assert part in message


def _run(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflow": "order-processing", "foreignID": name, **spec},
    }


def test_workflow_run_identity_is_immutable_and_cancel_is_final(api: client.ApiClient, namespace: str) -> None:
    objects = client.CustomObjectsApi(api)
    name = f"run-{uuid.uuid4().hex[:6]}"
    created = create_custom(api, namespace, _run(name, object={"id": "o-1", "nested": {"any": [1, 2]}}), "workflowruns")
    assert created["spec"]["state"] == "Running"  # the schema's default
    assert created["spec"]["object"] == {"id": "o-1", "nested": {"any": [1, 2]}}  # opaque: kept as given

    def patch(spec: dict[str, Any]) -> str:
        with pytest.raises(ApiException) as refused:
            objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, "workflowruns", name, {"spec": spec})
        assert refused.value.status == 422
        return str(refused.value.body)

    assert "spec.workflow" in patch({"workflow": "another"})
    assert "workflow is immutable" in patch({"workflow": "another"})
    assert "foreignID is immutable" in patch({"foreignID": "another"})
    assert "spec.state" in patch({"state": "Stopped"})
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflowruns", name, {"spec": {"state": "Paused"}}
    )
    objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflowruns", name, {"spec": {"state": "Cancelled"}}
    )
    assert "a Cancelled run can only have its data deleted" in patch({"state": "Running"})


def test_the_example_manifests_apply(
    api: client.ApiClient, namespace: str, kubectl: Callable[..., list[str]], crds: list[dict[str, Any]]
) -> None:
    example = ROOT / "examples" / "order_processing"
    files = ["-f", str(example / "workflow.yaml"), "-f", str(example / "workflowrun.yaml")]
    subprocess.run(kubectl("apply", "-n", namespace, *files), capture_output=True, text=True, check=True)
    # The client types a custom object as `object`; the API server answers with the object's JSON.
    found = cast(
        dict[str, Any],
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "workflows", "order-processing"
        ),
    )
    assert found["spec"]["steps"]["PAID"] == {"parallelCount": 1, "replicasPerShard": 1}  # the schema's defaults
    assert found["spec"]["steps"]["CREATED"]["replicasPerShard"] == 2
