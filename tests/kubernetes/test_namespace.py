"""default_namespace: the pod's own namespace (its service account's mounted `namespace` file), else "default"."""

from __future__ import annotations

from pathlib import Path

import pytest

import conveyor.kubernetes._namespace as namespace_module
from conveyor.kubernetes import default_namespace


@pytest.fixture
def mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "serviceaccount" / "namespace"
    monkeypatch.setattr(namespace_module, "SERVICE_ACCOUNT_NAMESPACE", path)
    return path


def test_the_default_path_is_the_service_accounts() -> None:
    path = namespace_module.SERVICE_ACCOUNT_NAMESPACE
    assert path.as_posix() == "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def test_in_a_pod_its_own_namespace(mounted: Path) -> None:
    mounted.parent.mkdir()
    mounted.write_text("orders\n")
    assert default_namespace() == "orders"


def test_outside_a_cluster_default(mounted: Path) -> None:
    assert default_namespace() == "default"


def test_an_empty_or_unreadable_file_means_default(mounted: Path) -> None:
    mounted.parent.mkdir()
    mounted.write_text("  \n")
    assert default_namespace() == "default"
    mounted.unlink()
    mounted.mkdir()  # a directory: reading it fails
    assert default_namespace() == "default"
