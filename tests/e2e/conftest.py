"""Fixtures of the e2e suite: a real cluster, set up exactly as the README's "On Kubernetes" quick start says.

Default (what `make test` and CI run): `scripts/kind.sh` makes a kind cluster of its own (CONVEYOR_KIND_CLUSTER
conveyor-e2e, made anew for each session and deleted after it; CONVEYOR_E2E_KEEP=1 keeps it), then the README's
quick start block (the one after `<!-- e2e: quickstart -->`) runs as it is written, in bash: images built and
loaded, Postgres and Kafka in the cluster, the schema migrated by a Job, `helm install` of the chart, the example's
Workflow and WorkflowRun applied. A cluster that cannot be made skips locally and fails under CI=true; a quick
start step that fails is a failure. Its output is kept in artifacts/e2e/quickstart.log.

Any other cluster (CONVEYOR_E2E_KUBECONFIG set): set up the same way by hand (e2e/README.md); nothing is started.

A failed test leaves `Cluster.dump()` under artifacts/e2e/<test>/ and says where."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from tests.e2e.cluster import ARTIFACTS, Cluster, environment, wait
from tests.helpers import ROOT
from tests.services import unavailable

KIND_CLUSTER = "conveyor-e2e"
QUICKSTART_MARKER = "<!-- e2e: quickstart -->"
QUICKSTART_TIMEOUT = 3600.0  # a cold machine builds the node image and every image first
_FAILED = pytest.StashKey[bool]()


def quickstart() -> str:
    """The README's Kubernetes quick start: the bash block after its marker."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(re.escape(QUICKSTART_MARKER) + r"\s*```bash\n(.*?)```", readme, re.DOTALL)
    assert found, f"README.md has no ```bash block after {QUICKSTART_MARKER}"
    return found.group(1)


def _api(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def _kind(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "kind.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _kind_cluster() -> Iterator[Cluster]:
    env = {**os.environ, "CONVEYOR_KIND_CLUSTER": KIND_CLUSTER}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "quickstart.log"
    # A fresh cluster each session: what the quick start meets is what a newcomer's machine has.
    _kind(env, "stop", timeout=300)
    try:
        started = _kind(env, "start", timeout=QUICKSTART_TIMEOUT)
    except subprocess.TimeoutExpired:
        unavailable(f"scripts/kind.sh start did not finish within {QUICKSTART_TIMEOUT:.0f}s")
        raise
    log.write_text(f"$ scripts/kind.sh start\n{started.stdout}{started.stderr}")
    if started.returncode != 0:
        unavailable(f"no kind cluster could be made with scripts/kind.sh start: see {log}")
    try:
        with log.open("a") as out:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-xc", quickstart()],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=QUICKSTART_TIMEOUT,
                check=False,
            )
        found = dict(line.split("=", 1) for line in _kind(env, "env", timeout=300).stdout.splitlines() if "=" in line)
        kubeconfig = found.get("KUBECONFIG")
        assert kubeconfig, f"scripts/kind.sh env gave no KUBECONFIG (see {log})"
        cluster = Cluster(
            _api(kubeconfig),
            environment(kubeconfig, found.get("PATH")) | {"DOCKER_HOST": found.get("DOCKER_HOST", "")},
            namespace="orders",
            release="conveyor",
            release_namespace="conveyor-system",
            image="orders:0.1.0",
            kind_cluster=KIND_CLUSTER,
        )
        if done.returncode != 0:
            where = cluster.dump("quickstart")
            pytest.fail(
                f"the README's Kubernetes quick start failed (exit {done.returncode}): its output is in {log}, "
                f"the cluster's state in {where}",
                pytrace=False,
            )
        yield cluster
    finally:
        if os.environ.get("CONVEYOR_E2E_KEEP", "") not in ("1", "true", "yes"):
            _kind(env, "stop", timeout=300)


def _given_cluster(kubeconfig: str) -> Cluster:
    """A cluster set up by hand as the README says (e2e/README.md names the variables)."""
    env = environment(kubeconfig)
    cluster = Cluster(
        _api(kubeconfig),
        env,
        namespace=os.environ.get("CONVEYOR_E2E_NAMESPACE") or "orders",
        release=os.environ.get("CONVEYOR_E2E_RELEASE") or "conveyor",
        release_namespace=os.environ.get("CONVEYOR_E2E_RELEASE_NAMESPACE") or "conveyor-system",
        image=os.environ.get("CONVEYOR_E2E_IMAGE") or "orders:0.1.0",
        kind_cluster=None,
    )
    wait(
        f"the Workflow order-processing in namespace {cluster.namespace}",
        lambda: cluster.workflow("order-processing"),
        timeout=10,
    )
    return cluster


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    given = os.environ.get("CONVEYOR_E2E_KUBECONFIG")
    if given:
        yield _given_cluster(given)
    else:
        yield from _kind_cluster()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def dump_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test, everything that explains it, kept under artifacts/e2e/<test>/."""
    yield
    if request.node.stash.get(_FAILED, False) and "cluster" in request.fixturenames:
        found: Cluster = request.getfixturevalue("cluster")
        where = found.dump(request.node.name)
        print(f"\nthe cluster's pods, logs, Events and Leases at the failure: {where}")
