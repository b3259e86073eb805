"""Real services for the tests (DESIGN §6): each session fixture uses the service named by its environment variable
if it answers, or starts it with the project's script (and stops it afterwards). A service that cannot be had
skips its tests locally and FAILS them under CI=true: CI never passes by skipping."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import run_script


def unavailable(what: str) -> None:
    # CI services set CI=true; "1" and other spellings of yes count too, so a CI run can never pass by skipping.
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"{what} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(what)


def restartable_kube(kubeconfig: str) -> None:
    """For a test that restarts the API server of `kubeconfig` with scripts/kube.sh: that control plane must be the
    one the script started (else the test is unavailable)."""
    status = run_script("kube.sh", "status", timeout=60)
    if status.returncode != 0 or kubeconfig not in status.stdout:
        unavailable("the API server under test was not started by scripts/kube.sh, so this test cannot restart it")


def _script(name: str, variable: str, timeout: float) -> str | None:
    try:
        done = run_script(name, "start", timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    found = re.search(rf"^{variable}=(\S+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found:
        print(done.stdout[-2000:], done.stderr[-2000:])
        return None
    return found.group(1)


def service(name: str, variable: str, script: str, reachable: Callable[[str], bool], timeout: float) -> Iterator[str]:
    given = os.environ.get(variable)
    if given and reachable(given):
        yield given
        return
    was_running = run_script(script, "status", timeout=60).returncode == 0
    address = _script(script, variable, timeout)
    if address is None or not reachable(address):
        unavailable(f"{name} could not be started with scripts/{script}")
        return
    yield address
    if not was_running:
        run_script(script, "stop", timeout=300)


def _postgres_answers(dsn: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=5):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A migrated PostgreSQL database."""
    for dsn in service("PostgreSQL", "CONVEYOR_PG_DSN", "postgres.sh", _postgres_answers, timeout=600):
        from conveyor.adapters.postgres import migrate

        asyncio.run(migrate(dsn))
        yield dsn


def _kafka_answers(address: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": address}).list_topics(timeout=5)
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A running Kafka broker's bootstrap address."""
    yield from service("Kafka", "CONVEYOR_KAFKA", "kafka.sh", _kafka_answers, timeout=900)


def _kube_answers(path: str) -> bool:
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
        with client.ApiClient(configuration) as api:
            client.VersionApi(api).get_code(_request_timeout=5)
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """The kubeconfig of a running Kubernetes control plane (API server, etcd, controller-manager; RBAC on).
    The first start builds the components from their Go modules, which takes a while; later starts reuse them."""
    yield from service("Kubernetes API server", "KUBECONFIG", "kube.sh", _kube_answers, timeout=3600)


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> Iterator[Any]:
    """A Kubernetes API client (kubernetes.client.ApiClient) for the control plane of `kubeconfig`, as its admin."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    with client.ApiClient(configuration) as api_client:
        yield api_client
