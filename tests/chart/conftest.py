"""Fixtures of the chart tests: helm (built by scripts/helm.sh on first use), kubectl of the development control
plane, and rendering the chart into Kubernetes objects."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from tests.helpers import CACHE, ROOT
from tests.services import unavailable

CHART = ROOT / "charts" / "conveyor"

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary; the first call builds it from its Go module (about two minutes)."""
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "helm.sh"), "path"], capture_output=True, text=True, timeout=1800
        )
    except subprocess.TimeoutExpired:
        unavailable("scripts/helm.sh path did not finish within 30 minutes")
        raise
    found = re.search(r"^HELM=(\S+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found or not Path(found.group(1)).is_file():
        print(done.stdout[-2000:], done.stderr[-2000:])
        unavailable("helm could not be built with scripts/helm.sh")
        raise AssertionError("unreachable")
    return found.group(1)


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> str:
    """kubectl built by scripts/kube.sh beside the API server it started (or one on PATH)."""
    built = sorted(CACHE.glob("kube/bin-*/.complete"), key=lambda p: p.stat().st_mtime)
    if built and (built[-1].parent / "kubectl").is_file():
        return str(built[-1].parent / "kubectl")
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if (Path(folder) / "kubectl").is_file():
            return str(Path(folder) / "kubectl")
    unavailable("no kubectl: neither built by scripts/kube.sh nor on PATH")
    raise AssertionError("unreachable")


def run_helm(helm: str, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args, str(chart)], capture_output=True, text=True, timeout=60, check=False)


def helm_template(
    helm: str, *args: str, release: str = "demo", namespace: str = "conveyor-system"
) -> list[dict[str, Any]]:
    """The objects `helm template RELEASE <chart> --namespace NAMESPACE ARGS` makes (the chart tests' and the e2e
    suite's one way of rendering the chart)."""
    done = subprocess.run(
        [helm, "template", release, str(CHART), "--namespace", namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture
def render(helm: str) -> Render:
    """render(*helm_args, release=..., namespace=...) -> the objects `helm template` makes."""

    def render(*args: str, release: str = "demo", namespace: str = "conveyor-system") -> list[dict[str, Any]]:
        return helm_template(helm, *args, release=release, namespace=namespace)

    return render


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
