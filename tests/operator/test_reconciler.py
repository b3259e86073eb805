"""The Workflow reconciler, running in-process (kopf) against the real API server and controller-manager: the
Deployments it makes, convergence when parallelCount changes, status and Events, Degraded specs, and the garbage
collector removing everything with the Workflow. There is no kubelet, so pods stay Pending: shards never become
ready and the Workflow must say Progressing, not fail."""

from __future__ import annotations

from typing import Any, cast

import pytest
from kubernetes import client

from tests.helpers import GROUP, VERSION, create_custom, eventually, unique, workflow

pytestmark = pytest.mark.usefixtures("operator")


def _get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, "workflows", name)
    return cast(dict[str, Any], found)


def _patch_steps(api: client.ApiClient, namespace: str, name: str, steps: dict[str, Any]) -> None:
    # A JSON merge patch, as `kubectl patch --type merge -p '{"spec": {"steps": ...}}'` sends.
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", name, {"spec": {"steps": steps}}
    )


def _deployments(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    # Any: the tests read deep into each Deployment, where nearly every field of the client's models is Optional.
    listed = client.AppsV1Api(api).list_namespaced_deployment(namespace, label_selector=f"conveyor.dev/workflow={name}")
    found: dict[str, Any] = {}
    for d in listed.items:
        assert d.metadata is not None and d.metadata.name is not None, d
        found[d.metadata.name] = d
    return found


def _has(api: client.ApiClient, namespace: str, name: str, expected: set[str]) -> dict[str, Any] | None:
    found = _deployments(api, namespace, name)
    return found if set(found) == expected else None


def _condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == type_)


def _status_for(api: client.ApiClient, namespace: str, name: str, generation: int) -> dict[str, Any] | None:
    body = _get(api, namespace, name)
    status = body.get("status") or {}
    return body if status.get("observedGeneration") == generation and status.get("conditions") else None


def _reasons(api: client.ApiClient, namespace: str, name: str) -> list[str]:
    events = client.CoreV1Api(api).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [e.reason for e in events.items if e.involved_object.kind == "Workflow" and e.reason is not None]


def test_a_workflow_gets_a_deployment_per_shard_and_one_for_its_system_roles(
    api: client.ApiClient, namespace: str
) -> None:
    name = unique("orders")
    created = create_custom(
        api, namespace, workflow(name, {"CREATED": {"parallelCount": 2, "replicasPerShard": 2}, "PAID": {}}, debug=True)
    )
    expected = {f"{name}-created-1", f"{name}-created-2", f"{name}-paid-1", f"{name}-system"}
    found = eventually(lambda: _has(api, namespace, name, expected))

    deployment = found[f"{name}-created-2"]
    assert deployment.spec.replicas == 2
    (owner,) = deployment.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Workflow", name, created["metadata"]["uid"], True)
    labels = deployment.metadata.labels
    assert labels["conveyor.dev/workflow"] == name
    assert labels["conveyor.dev/step"] == "CREATED"
    assert labels["conveyor.dev/shard"] == "2"
    assert labels["app.kubernetes.io/managed-by"] == "conveyor-operator"
    assert labels["app.kubernetes.io/instance"] == name
    pod = deployment.spec.template.spec
    (container,) = pod.containers
    assert container.command == [
        "conveyor",
        "worker",
        "orders.workflow:builder",
        "--step",
        "CREATED",
        "--shard",
        "2",
    ]
    env = {e.name: e for e in container.env}
    # Every step's name (for the worker's check of the code), options only for its own step, and not replicasPerShard
    # (the Deployment's replicas): nothing else's change rolls this worker.
    assert env["CONVEYOR_STEPS"].value == '{"CREATED":{"parallelCount":2},"PAID":{}}'
    assert deployment.spec.strategy.type == "Recreate"
    assert env["CONVEYOR_PG_DSN"].value_from.secret_key_ref.name == "pg"
    assert env["CONVEYOR_PG_DSN"].value_from.secret_key_ref.key == "dsn"
    assert env["CONVEYOR_KAFKA"].value == "kafka:9092"
    assert env["CONVEYOR_KAFKA_PARTITIONS"].value == "4"
    assert env["CONVEYOR_NAMESPACE"].value_from.field_ref.field_path == "metadata.namespace"
    assert env["POD_NAME"].value_from.field_ref.field_path == "metadata.name"
    assert env["CONVEYOR_PORT"].value == "8080"
    assert env["CONVEYOR_DEBUG"].value == "true"
    assert (container.liveness_probe.http_get.path, container.liveness_probe.http_get.port) == ("/healthz", "http")
    assert container.readiness_probe.http_get.path == "/readyz"
    assert container.ports[0].container_port == 8080
    security = container.security_context
    assert security.run_as_non_root and security.run_as_user == 10001
    assert security.read_only_root_filesystem and security.allow_privilege_escalation is False
    assert security.capabilities.drop == ["ALL"]
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert [(v.name, v.empty_dir is not None) for v in pod.volumes] == [("tmp", True)]
    assert container.volume_mounts[0].mount_path == "/tmp"

    system = found[f"{name}-system"].spec.template.spec.containers[0]
    assert system.command == ["conveyor", "worker", "orders.workflow:builder", "--system"]
    assert next(e.value for e in system.env if e.name == "CONVEYOR_STEPS") == '{"CREATED":{},"PAID":{}}'
    assert next(e.value for e in found[f"{name}-paid-1"].spec.template.spec.containers[0].env).startswith(
        '{"CREATED":{},"PAID":{"parallelCount":1}}'
    )

    # No kubelet here: the pods stay Pending, which is progress, not failure.
    body = eventually(lambda: _status_for(api, namespace, name, 1))
    assert _condition(body, "Ready")["status"] == "False"
    assert _condition(body, "Ready")["reason"] == "ShardsNotReady"
    assert _condition(body, "Progressing")["status"] == "True"
    assert _condition(body, "Degraded")["status"] == "False"
    assert body["status"]["steps"] == [
        {"name": "CREATED", "desiredShards": 2, "readyShards": 0},
        {"name": "PAID", "desiredShards": 1, "readyShards": 0},
    ]
    assert body["status"]["shards"] == "0/3"
    assert not (body["metadata"].get("finalizers") or [])
    assert "kopf" not in body["status"]
    assert eventually(lambda: _reasons(api, namespace, name).count("Created") == 4)


def test_parallel_count_up_then_down_converges(api: client.ApiClient, namespace: str) -> None:
    name = unique("scale")
    create_custom(api, namespace, workflow(name, {"CREATED": {"parallelCount": 2}}))
    before = eventually(
        lambda: _has(api, namespace, name, {f"{name}-created-1", f"{name}-created-2", f"{name}-system"})
    )

    _patch_steps(api, namespace, name, {"CREATED": {"parallelCount": 4}})
    shards = {f"{name}-created-{k}" for k in range(1, 5)}
    up = eventually(lambda: _has(api, namespace, name, {*shards, f"{name}-system"}))

    def patched(count: int) -> bool:
        steps = {
            d.metadata.name: next(e.value for e in d.spec.template.spec.containers[0].env if e.name == "CONVEYOR_STEPS")
            for d in _deployments(api, namespace, name).values()
            if d.metadata.name != f"{name}-system"  # it gets the step names only
        }
        return all(f'"parallelCount":{count}' in value for value in steps.values())

    eventually(lambda: patched(4))
    # The surviving shards were patched in place, never recreated.
    for kept in (f"{name}-created-1", f"{name}-created-2", f"{name}-system"):
        assert up[kept].metadata.uid == before[kept].metadata.uid
    body = eventually(lambda: _status_for(api, namespace, name, 2))
    assert body["status"]["steps"] == [{"name": "CREATED", "desiredShards": 4, "readyShards": 0}]

    _patch_steps(api, namespace, name, {"CREATED": {"parallelCount": 1}})
    down = eventually(lambda: _has(api, namespace, name, {f"{name}-created-1", f"{name}-system"}))
    assert down[f"{name}-created-1"].metadata.uid == before[f"{name}-created-1"].metadata.uid
    body = eventually(lambda: _status_for(api, namespace, name, 3))
    assert body["status"]["shards"] == "0/1"
    assert eventually(lambda: _reasons(api, namespace, name).count("Deleted") == 3)
    eventually(lambda: patched(1))

    # Converged means quiet: a change that is not to the spec reconciles (kopf records it as handled) and
    # applies nothing: no Deployment's spec is touched.
    generations = {n: d.metadata.generation for n, d in _deployments(api, namespace, name).items()}
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", name, {"metadata": {"labels": {"touched": "yes"}}}
    )
    handled = "conveyor.dev/last-handled-configuration"
    eventually(lambda: "touched" in _get(api, namespace, name)["metadata"]["annotations"].get(handled, ""))
    assert {n: d.metadata.generation for n, d in _deployments(api, namespace, name).items()} == generations


def _when(value: Any, holds: Any) -> Any:
    return value if holds(value) else None


def _steps_env(deployment: Any) -> str:
    return str(next(e.value for e in deployment.spec.template.spec.containers[0].env if e.name == "CONVEYOR_STEPS"))


def test_scaling_one_step_leaves_every_other_deployment_untouched(api: client.ApiClient, namespace: str) -> None:
    name = unique("one")
    create_custom(api, namespace, workflow(name, {"CREATED": {"parallelCount": 2}, "PAID": {}}))
    before = eventually(
        lambda: _has(
            api, namespace, name, {f"{name}-created-1", f"{name}-created-2", f"{name}-paid-1", f"{name}-system"}
        )
    )
    apps = client.AppsV1Api(api)

    def template_hashes() -> dict[str, set[str]]:
        # The controller-manager names each pod template by a hash on its ReplicaSet: a rolled Deployment has a new one.
        listed = apps.list_namespaced_replica_set(namespace, label_selector=f"conveyor.dev/workflow={name}").items
        found: dict[str, set[str]] = {}
        for replica_set in listed:
            meta = replica_set.metadata
            assert meta is not None and meta.owner_references and meta.labels is not None, replica_set
            found.setdefault(meta.owner_references[0].name, set()).add(meta.labels["pod-template-hash"])
        return found

    first = eventually(lambda: _when(template_hashes(), lambda found: len(found) == 4))

    _patch_steps(api, namespace, name, {"PAID": {"parallelCount": 2}})
    after = eventually(
        lambda: _has(
            api,
            namespace,
            name,
            {f"{name}-created-1", f"{name}-created-2", f"{name}-paid-1", f"{name}-paid-2", f"{name}-system"},
        )
    )
    eventually(lambda: '"parallelCount":2' in _steps_env(_deployments(api, namespace, name)[f"{name}-paid-1"]))
    eventually(lambda: _status_for(api, namespace, name, 2))
    # PAID's first shard rolled to a new template, its second is new; nobody else got a new one.
    rolled = eventually(
        lambda: _when(template_hashes(), lambda found: len(found) == 5 and len(found[f"{name}-paid-1"]) == 2)
    )
    for kept in (f"{name}-created-1", f"{name}-created-2", f"{name}-system"):
        assert rolled[kept] == first[kept], kept
    now = _deployments(api, namespace, name)
    for kept in (f"{name}-created-1", f"{name}-created-2", f"{name}-system"):
        assert now[kept].metadata.generation == before[kept].metadata.generation, kept
        assert now[kept].spec.template == before[kept].spec.template, kept
    assert now[f"{name}-paid-1"].metadata.generation > before[f"{name}-paid-1"].metadata.generation
    assert after[f"{name}-paid-2"].spec.strategy.type == "Recreate"


def test_a_deleted_shard_deployment_comes_back(api: client.ApiClient, namespace: str) -> None:
    name = unique("heal")
    create_custom(api, namespace, workflow(name, {"PAID": {}}))
    expected = {f"{name}-paid-1", f"{name}-system"}
    first = eventually(lambda: _has(api, namespace, name, expected))
    client.AppsV1Api(api).delete_namespaced_deployment(f"{name}-paid-1", namespace)

    def recreated() -> bool:
        found = _has(api, namespace, name, expected)
        return found is not None and found[f"{name}-paid-1"].metadata.uid != first[f"{name}-paid-1"].metadata.uid

    eventually(recreated)


def test_colliding_step_names_are_degraded_and_create_nothing(api: client.ApiClient, namespace: str) -> None:
    name = unique("collide")
    create_custom(api, namespace, workflow(name, {"PAID": {}, "paid": {}}))
    body = eventually(lambda: _status_for(api, namespace, name, 1))
    degraded = _condition(body, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "StepNamesCollide")
    assert "PAID, paid" in degraded["message"]
    assert _condition(body, "Ready")["status"] == "False"
    assert _deployments(api, namespace, name) == {}
    assert "StepNamesCollide" in eventually(lambda: _reasons(api, namespace, name))

    # Fixing the spec recovers.
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "workflows",
        name,
        [{"op": "remove", "path": "/spec/steps/paid"}],
        _content_type="application/json-patch+json",
    )
    eventually(lambda: _has(api, namespace, name, {f"{name}-paid-1", f"{name}-system"}))
    body = eventually(lambda: _status_for(api, namespace, name, 2))
    assert _condition(body, "Degraded")["status"] == "False"


def test_a_name_taken_by_someone_else_is_degraded(api: client.ApiClient, namespace: str) -> None:
    name = unique("taken")
    labels = {"app": "theirs"}
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=f"{name}-system"),
            spec=client.V1DeploymentSpec(
                replicas=0,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="example.com/theirs:1")]),
                ),
            ),
        ),
    )
    create_custom(api, namespace, workflow(name, {"PAID": {}}))
    body = eventually(lambda: _status_for(api, namespace, name, 1))
    assert _condition(body, "Degraded")["reason"] == "NameConflict"
    assert f"{name}-system" in _condition(body, "Degraded")["message"]
    theirs = client.AppsV1Api(api).read_namespaced_deployment(f"{name}-system", namespace)
    assert theirs.metadata is not None and theirs.spec is not None and theirs.spec.template.metadata is not None
    assert theirs.metadata.owner_references is None  # left alone
    assert theirs.spec.template.metadata.labels == labels
    assert _deployments(api, namespace, name) == {}


def test_deleting_the_workflow_lets_the_garbage_collector_remove_its_deployments(
    api: client.ApiClient, namespace: str
) -> None:
    name = unique("gc")
    create_custom(api, namespace, workflow(name, {"CREATED": {"parallelCount": 2}}))
    eventually(lambda: len(_deployments(api, namespace, name)) == 3)
    client.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, "workflows", name)
    eventually(lambda: _deployments(api, namespace, name) == {}, timeout=30)


def test_a_rolling_update_deployment_of_an_earlier_operator_becomes_recreate(
    api: client.ApiClient, namespace: str
) -> None:
    # Deployments made before workers used Recreate carry the API server's defaulted rollingUpdate, which an apply
    # alone cannot drop: the operator switches the strategy first.
    name = unique("upgrade")
    create_custom(api, namespace, workflow(name, {"PAID": {}}))
    eventually(lambda: _has(api, namespace, name, {f"{name}-paid-1", f"{name}-system"}))
    apps = client.AppsV1Api(api)
    apps.patch_namespaced_deployment(
        f"{name}-paid-1",
        namespace,
        {
            "metadata": {"annotations": {"conveyor.dev/spec-hash": "made-by-an-earlier-operator"}},
            "spec": {"strategy": {"type": "RollingUpdate"}},
        },
        _content_type="application/merge-patch+json",
    )
    old = apps.read_namespaced_deployment(f"{name}-paid-1", namespace)
    assert old.spec is not None and old.spec.strategy is not None
    assert old.spec.strategy.rolling_update is not None
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", name, {"metadata": {"labels": {"touched": "yes"}}}
    )

    def recreated() -> bool:
        found = apps.read_namespaced_deployment(f"{name}-paid-1", namespace)
        strategy = found.spec.strategy if found.spec is not None else None
        return strategy is not None and strategy.type == "Recreate" and strategy.rolling_update is None

    eventually(recreated)
    eventually(lambda: "Updated" in _reasons(api, namespace, name))
