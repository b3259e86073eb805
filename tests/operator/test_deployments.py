"""The Deployments a Workflow asks for, without a cluster: names that stay valid, the fixed worker command line,
its environment, probes and locked-down security context."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conveyor_operator._deployments import desired_deployments
from conveyor_operator._models import WorkflowSpec
from conveyor_operator._names import MAX_DEPLOYMENT_NAME, shard_deployment_name, system_deployment_name
from tests.helpers import workflow


def _manifest(**spec: Any) -> dict[str, Any]:
    body = workflow("orders", {"CREATED": {"parallelCount": 2, "replicasPerShard": 3}, "PAID": {}}, **spec)
    body["metadata"].update(namespace="shop", uid="uid-1")
    return body


def test_names_are_short_unique_and_keep_the_shard() -> None:
    assert shard_deployment_name("orders", "PAYMENT_FAILED", 2) == "orders-payment-failed-2"
    assert system_deployment_name("orders") == "orders-system"
    long = "w" * 63
    a, b = shard_deployment_name(long, "CREATED", 12), shard_deployment_name(long, "PAID", 12)
    assert a != b
    assert len(a) <= MAX_DEPLOYMENT_NAME and a.endswith("-12")
    assert len(system_deployment_name(long)) <= MAX_DEPLOYMENT_NAME


def test_one_deployment_per_shard_and_one_for_the_system_roles() -> None:
    body = _manifest(debug=True)
    found = {d.name: d for d in desired_deployments(body, WorkflowSpec.model_validate(body["spec"]))}
    assert sorted(found) == ["orders-created-1", "orders-created-2", "orders-paid-1", "orders-system"]
    shard = found["orders-created-2"].manifest
    assert shard["spec"]["replicas"] == 3
    container = shard["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == [
        "conveyor",
        "worker",
        "orders.workflow:builder",
        "--step",
        "CREATED",
        "--shard",
        "2",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["CONVEYOR_DEBUG"]["value"] == "true"
    assert env["CONVEYOR_PG_DSN"]["valueFrom"] == {"secretKeyRef": {"name": "pg", "key": "dsn"}}
    system = found["orders-system"].manifest["spec"]["template"]["spec"]["containers"][0]
    assert system["command"][-1] == "--system"
    assert found["orders-system"].manifest["spec"]["replicas"] == 1


def test_every_worker_waits_for_its_store_and_older_workers_still_start() -> None:
    body = _manifest()
    for desired in desired_deployments(body, WorkflowSpec.model_validate(body["spec"])):
        (container,) = desired.manifest["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        # `conveyor worker --wait-for-store`, said in the environment: a worker image of a conveyor without the
        # flag ignores the variable, where it would refuse an unknown argument and never start.
        assert env["CONVEYOR_WAIT_FOR_STORE"] == "true", desired.name
        assert "--wait-for-store" not in container["command"], desired.name


def _steps_env(desired: Any) -> dict[str, Any]:
    container = desired.manifest["spec"]["template"]["spec"]["containers"][0]
    value = next(e["value"] for e in container["env"] if e["name"] == "CONVEYOR_STEPS")
    parsed: dict[str, Any] = json.loads(value)
    return parsed


def test_each_worker_gets_every_step_name_but_only_its_own_steps_options() -> None:
    body = _manifest()
    body["spec"]["steps"]["PAID"] = {"parallelCount": 1, "errBackOff": "5s"}
    found = {d.name: d for d in desired_deployments(body, WorkflowSpec.model_validate(body["spec"]))}
    # replicasPerShard is the Deployment's replicas, not the worker's business.
    assert _steps_env(found["orders-created-2"]) == {"CREATED": {"parallelCount": 2}, "PAID": {}}
    assert _steps_env(found["orders-paid-1"]) == {"CREATED": {}, "PAID": {"parallelCount": 1, "errBackOff": "5s"}}
    assert _steps_env(found["orders-system"]) == {"CREATED": {}, "PAID": {}}


def test_every_worker_deployment_is_recreated_not_rolled() -> None:
    body = _manifest()
    for desired in desired_deployments(body, WorkflowSpec.model_validate(body["spec"])):
        assert desired.manifest["spec"]["strategy"] == {"type": "Recreate"}, desired.name


def _hashes(body: dict[str, Any]) -> dict[str, str]:
    return {d.name: d.spec_hash for d in desired_deployments(body, WorkflowSpec.model_validate(body["spec"]))}


def _templates(body: dict[str, Any]) -> dict[str, Any]:
    spec = WorkflowSpec.model_validate(body["spec"])
    return {d.name: d.manifest["spec"]["template"] for d in desired_deployments(body, spec)}


def test_a_steps_changed_options_change_only_that_steps_deployments() -> None:
    body = _manifest()
    before = _hashes(body)
    assert before == _hashes(body)

    body["spec"]["steps"]["PAID"]["parallelCount"] = 2
    after = _hashes(body)
    assert set(after) == {*before, "orders-paid-2"}
    assert after["orders-paid-1"] != before["orders-paid-1"]
    for unchanged in ("orders-created-1", "orders-created-2", "orders-system"):
        assert after[unchanged] == before[unchanged], unchanged

    body["spec"]["steps"]["CREATED"]["errBackOff"] = "10s"
    again = _hashes(body)
    assert again["orders-created-1"] != after["orders-created-1"]
    assert again["orders-created-2"] != after["orders-created-2"]
    for unchanged in ("orders-paid-1", "orders-paid-2", "orders-system"):
        assert again[unchanged] == after[unchanged], unchanged


def test_replicas_per_shard_scales_without_changing_any_pod_template() -> None:
    body = _manifest()
    templates = _templates(body)
    body["spec"]["steps"]["CREATED"]["replicasPerShard"] = 1
    assert _templates(body) == templates
    found = {d.name: d for d in desired_deployments(body, WorkflowSpec.model_validate(body["spec"]))}
    assert found["orders-created-1"].manifest["spec"]["replicas"] == 1


def test_a_new_step_changes_the_system_deployment_too() -> None:
    # Every worker checks the code's step names against the manifest's: a new step is news to all of them.
    body = _manifest()
    before = _hashes(body)
    body["spec"]["steps"]["SHIPPED"] = {}
    after = _hashes(body)
    assert "orders-shipped-1" in after
    assert all(after[name] != digest for name, digest in before.items())


def test_resources_default_and_follow_the_manifest() -> None:
    body = _manifest()
    (first, *_) = desired_deployments(body, WorkflowSpec.model_validate(body["spec"]))
    assert first.manifest["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "25m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    body = _manifest(resources={"limits": {"memory": "1Gi", "cpu": 2}})
    (first, *_) = desired_deployments(body, WorkflowSpec.model_validate(body["spec"]))
    assert first.manifest["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"memory": "1Gi", "cpu": 2}
    }


def _millicores(quantity: str) -> int:
    return int(quantity.removesuffix("m")) if quantity.endswith("m") else int(float(quantity) * 1000)


def test_the_example_resharded_fits_a_two_cpu_node_beside_the_control_plane_and_the_operator() -> None:
    """kind on a 2-CPU machine: the control plane requests ~850m, the chart's operator replicas theirs. The example
    Workflow with CREATED resharded 2 -> 3 must schedule every worker, even with the old shards' pods still
    terminating (they hold their requests until they are gone)."""
    import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies

    from tests.helpers import ROOT

    values = yaml.safe_load((ROOT / "charts" / "conveyor" / "values.yaml").read_text())
    operator = values["replicaCount"] * _millicores(values["resources"]["requests"]["cpu"])
    body = yaml.safe_load((ROOT / "examples" / "order_processing" / "workflow.yaml").read_text())
    body["metadata"].update(namespace="orders", uid="uid-1")

    def pods(manifest: dict[str, Any]) -> list[int]:
        found = []
        for desired in desired_deployments(manifest, WorkflowSpec.model_validate(manifest["spec"])):
            (container,) = desired.manifest["spec"]["template"]["spec"]["containers"]
            found += [_millicores(container["resources"]["requests"]["cpu"])] * desired.manifest["spec"]["replicas"]
        return found

    before = pods(body)
    assert len(before) == 9
    body["spec"]["steps"]["CREATED"]["parallelCount"] = 3
    after = pods(body)
    assert len(after) == 11
    created_before = 2 * body["spec"]["steps"]["CREATED"]["replicasPerShard"]
    assert 850 + operator + sum(after) + created_before * max(after) <= 2000


def test_workers_run_as_the_charts_worker_account_unless_the_workflow_names_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def accounts(body: dict[str, Any]) -> set[str | None]:
        spec = WorkflowSpec.model_validate(body["spec"])
        return {
            d.manifest["spec"]["template"]["spec"].get("serviceAccountName") for d in desired_deployments(body, spec)
        }

    monkeypatch.delenv("CONVEYOR_WORKER_SERVICE_ACCOUNT", raising=False)
    assert accounts(_manifest()) == {None}
    monkeypatch.setenv("CONVEYOR_WORKER_SERVICE_ACCOUNT", "conveyor-worker")
    assert accounts(_manifest()) == {"conveyor-worker"}
    assert accounts(_manifest(serviceAccountName="orders-worker")) == {"orders-worker"}
