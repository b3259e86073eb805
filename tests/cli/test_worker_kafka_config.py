"""`conveyor worker --kafka-config` (CONVEYOR_KAFKA_CONFIG, from the Workflow's spec.streamer.configSecretRef):
librdkafka settings as a JSON object, refused by name when malformed, never repeated in a refusal (it holds
passwords)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conveyor.cli import cli
from tests.helpers import CLI_APPS, free_port

STEPS = json.dumps({"OPENED": {"parallelCount": 1}, "TRIAGED": {"parallelCount": 1}})


def invoke(
    *args: str, dsn: str = "postgresql://nobody@127.0.0.1:1/x", kafka: str = "127.0.0.1:1", **env: str
) -> Result:
    base = ["worker", "worker_app:builder", "--path", str(CLI_APPS), "--system", "--steps", STEPS]
    base += ["--dsn", dsn, "--kafka", kafka, "--host", "127.0.0.1", "--port", str(free_port())]
    return CliRunner().invoke(cli, [*base, *args], env=env)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"sasl.password": "s3cret"', "expected a JSON object of librdkafka settings"),
        ('["sasl.password", "s3cret"]', "got a JSON array"),
        ('"s3cret"', "got a JSON value that is not an object"),
    ],
)
def test_settings_that_are_not_a_json_object_exit_2_without_repeating_them(config: str, message: str) -> None:
    for result in (invoke("--kafka-config", config), invoke(CONVEYOR_KAFKA_CONFIG=config)):
        assert result.exit_code == 2, result.output
        assert "--kafka-config" in result.output and message in result.output
        assert "s3cret" not in result.output


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"group.id": "mine"}, "client_config['group.id']"),
        ({"enable.auto.commit": True}, "client_config['enable.auto.commit']"),
        ({"acks": 1}, "client_config['acks']"),
        (
            {"sasl.password": ["s", 3]},
            "client_config['sasl.password']: expected a string, number or boolean, got 'list'",
        ),
    ],
)
def test_settings_conveyor_keeps_or_cannot_pass_exit_2_naming_them(config: dict[str, Any], field: str) -> None:
    result = invoke("--kafka-config", json.dumps(config))
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert "'s', 3" not in result.output and "mine" not in result.output


def test_a_property_librdkafka_does_not_know_stops_the_worker_naming_it(
    pg_dsn: str, kafka_bootstrap: str, kubeconfig: str
) -> None:
    result = invoke(
        "--kafka-config",
        json.dumps({"client.id": "w", "socket.keepalive": True}),
        dsn=pg_dsn,
        kafka=kafka_bootstrap,
        KUBECONFIG=kubeconfig,
        WORKER_APP_NAME="kafka-config-app",
    )
    assert result.exit_code == 1, result.output
    assert "client_config['socket.keepalive']" in result.output
    assert "No such configuration property" in result.output
