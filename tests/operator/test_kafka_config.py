"""spec.streamer.configSecretRef: the workers' librdkafka settings (TLS, SASL) come from a Secret, reach every
worker Deployment as CONVEYOR_KAFKA_CONFIG, and a malformed reference is refused by the API server by name."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conveyor_operator._deployments import desired_deployments
from conveyor_operator._models import WorkflowSpec
from tests.helpers import create_custom, workflow

STEPS = {"CREATED": {"parallelCount": 2}, "PAID": {}}


def _with_config(name: str, ref: dict[str, Any]) -> dict[str, Any]:
    body = workflow(name, STEPS)
    body["spec"]["streamer"]["configSecretRef"] = ref
    return body


def _kafka_config_env(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"].update(namespace="shop", uid="uid-1")
    found = {}
    for desired in desired_deployments(body, WorkflowSpec.model_validate(body["spec"])):
        container = desired.manifest["spec"]["template"]["spec"]["containers"][0]
        found[desired.name] = next((e for e in container["env"] if e["name"] == "CONVEYOR_KAFKA_CONFIG"), None)
    return found


def test_every_worker_gets_the_settings_from_the_secret() -> None:
    found = _kafka_config_env(_with_config("orders", {"name": "kafka-client", "key": "librdkafka.json"}))
    assert sorted(found) == ["orders-created-1", "orders-created-2", "orders-paid-1", "orders-system"]
    for env in found.values():
        assert env == {
            "name": "CONVEYOR_KAFKA_CONFIG",
            "valueFrom": {"secretKeyRef": {"name": "kafka-client", "key": "librdkafka.json"}},
        }


def test_without_a_reference_no_settings_are_passed() -> None:
    assert set(_kafka_config_env(workflow("orders", STEPS)).values()) == {None}


def test_the_api_server_keeps_the_reference(api: client.ApiClient, namespace: str) -> None:
    # Kept, not pruned: the field is in the CRD's structural schema.
    created = create_custom(api, namespace, _with_config("tls-kafka", {"name": "kafka-client", "key": "config.json"}))
    assert created["spec"]["streamer"]["configSecretRef"] == {"name": "kafka-client", "key": "config.json"}


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"name": "kafka-client"}, ["spec.streamer.configSecretRef.key", "Required value"]),
        ({"name": "Kafka_Client", "key": "k"}, ["spec.streamer.configSecretRef.name", "should match"]),
        ({"name": "kafka-client", "key": "a/b"}, ["spec.streamer.configSecretRef.key", "should match"]),
    ],
)
def test_a_malformed_reference_is_refused_naming_the_field(
    api: client.ApiClient, namespace: str, ref: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(ApiException) as refused:
        create_custom(api, namespace, _with_config("bad-kafka-config", ref))
    assert refused.value.status == 422
    for part in expected:
        assert part in str(refused.value.body)
