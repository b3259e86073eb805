"""The container image: scripts/image.sh makes the base (debootstrap, no registry) and builds the Dockerfile; the
image runs `conveyor` as uid 10001 on a read-only root filesystem, and a user's image FROM it runs their workflow
code. Needs a docker daemon (the script uses DOCKER_HOST's, or starts the project's own, scripts/docker.sh): a
missing one skips locally and fails under CI=true. A cold build takes about a minute and a half, a warm one
seconds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.services import unavailable

SCRIPT = ROOT / "scripts" / "image.sh"
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)


# The daemon that holds the image: the one scripts/image.sh build says.
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the classic builder, as scripts/image.sh uses


def docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, env=DOCKER_ENV
    )


@pytest.fixture(scope="module")
def image() -> str:
    try:
        done = subprocess.run(["bash", str(SCRIPT), "build"], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        unavailable("scripts/image.sh build did not finish within 15 minutes")
        raise
    found = re.search(r"^IMAGE=(\S+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found:
        print(done.stdout[-3000:], done.stderr[-3000:])
        unavailable("the image could not be built with scripts/image.sh build")
    assert found is not None
    host = re.search(r"^DOCKER_HOST=(\S+)$", done.stdout, re.MULTILINE)
    assert host is not None, done.stdout
    DOCKER_ENV["DOCKER_HOST"] = host.group(1)
    return found.group(1)


@pytest.mark.slow
def test_runs_conveyor_as_uid_10001(image: str) -> None:
    assert docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip() == "10001:10001"
    done = docker("run", "--rm", "--user", "10001:10001", "--read-only", image, "conveyor", "--version")
    assert done.returncode == 0, done.stderr
    assert VERSION is not None
    assert done.stdout.strip() == f"conveyor, version {VERSION.group(1)}"
    done = docker("run", "--rm", image, "id", "-u")
    assert done.stdout.strip() == "10001"


@pytest.mark.slow
def test_a_users_image_builds_on_it(image: str, tmp_path: Path) -> None:
    """FROM conveyor + COPY your code: the workflow's entrypoint is importable from /app."""
    shutil.copytree(ROOT / "examples" / "order_processing" / "orders", tmp_path / "orders")
    (tmp_path / "Dockerfile").write_text(f"FROM {image}\nCOPY --chown=10001:10001 orders/ /app/orders/\n")
    tag = f"{image.split(':')[0]}-test-user:latest"
    done = docker("build", "-t", tag, str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    try:
        done = docker("run", "--rm", "--read-only", tag, "conveyor", "graph", "orders.workflow:builder")
        assert done.returncode == 0, done.stderr
        assert "stateDiagram-v2" in done.stdout
        assert "order-processing" in done.stdout
    finally:
        docker("rmi", "-f", tag)
