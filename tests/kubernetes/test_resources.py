"""The custom resources' names in conveyor.kubernetes are the committed CRDs' (the operator builds the CRDs from
them), and importing the package loads no Kubernetes client: the operator and tools import it for its constants."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from conveyor.kubernetes import (
    API_VERSION,
    GROUP,
    VERSION,
    WORKFLOW_KIND,
    WORKFLOW_RUN_KIND,
    WORKFLOW_RUNS,
    WORKFLOWS,
)

ROOT = Path(__file__).resolve().parents[2]


def _crd(plural: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "crds" / f"{GROUP}_{plural}.yaml").read_text())
    return document


def test_the_names_are_the_committed_crds() -> None:
    assert (GROUP, VERSION, API_VERSION) == ("conveyor.dev", "v1alpha1", "conveyor.dev/v1alpha1")
    for plural, kind in ((WORKFLOWS, WORKFLOW_KIND), (WORKFLOW_RUNS, WORKFLOW_RUN_KIND)):
        crd = _crd(plural)
        assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
        assert crd["spec"]["group"] == GROUP
        assert crd["spec"]["names"]["plural"] == plural
        assert crd["spec"]["names"]["kind"] == kind
        assert [v["name"] for v in crd["spec"]["versions"]] == [VERSION]


def test_importing_it_loads_no_kubernetes_client() -> None:
    code = "import sys, conveyor.kubernetes; print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == "[]"
