"""Fixtures of the operator tests, all against the real API server (`kubeconfig`, tests/services.py): an API
client, the CRDs applied from the committed YAML and Established, a fresh namespace per test module (deleted
after), and the operator itself running in-process (kopf's KopfRunner) for that namespace."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.helpers import CACHE, ROOT, eventually


@pytest.fixture(scope="session")
def crds(api: client.ApiClient) -> list[dict[str, Any]]:
    """The committed CRDs, server-side applied and Established."""
    extensions = client.ApiextensionsV1Api(api)
    documents = [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*.yaml"))]
    for document in documents:
        extensions.patch_custom_resource_definition(
            document["metadata"]["name"],
            document,
            field_manager="conveyor-tests",
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def established() -> bool:
        for document in documents:
            found = extensions.read_custom_resource_definition(document["metadata"]["name"])
            if found.status is None:
                return False
            conditions = {c.type: c.status for c in found.status.conditions or []}
            if conditions.get("Established") != "True":
                return False
        return True

    eventually(established)
    return documents


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient, crds: list[dict[str, Any]]) -> Iterator[str]:
    name = f"conveyor-op-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> Callable[..., list[str]]:
    """argv of kubectl on the test cluster: the one scripts/kube.sh built, else the one on PATH."""
    built = sorted((CACHE / "kube").glob("bin-*/kubectl"))
    found = str(built[-1]) if built else shutil.which("kubectl")
    if found is None:
        pytest.fail("no kubectl: scripts/kube.sh builds one")

    def argv(*args: str) -> list[str]:
        return [str(found), "--kubeconfig", kubeconfig, *args]

    return argv


@pytest.fixture(scope="module")
def operator(kubeconfig: str, namespace: str) -> Iterator[None]:
    """The operator, in-process, serving `namespace`."""
    from kopf.testing import KopfRunner

    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = kubeconfig  # kopf's login and the operator's client read it
    try:
        args = ["run", "--standalone", "--namespace", namespace, "-m", "conveyor_operator._handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield
        assert runner.exit_code == 0, runner.output
        assert runner.exception is None
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous
