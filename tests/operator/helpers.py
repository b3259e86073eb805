"""Helpers of the operator tests: polling for an outcome, Workflow manifests, and `conveyor-operator` processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GROUP, VERSION = "conveyor.dev", "v1alpha1"
ROOT = Path(__file__).resolve().parents[2]


def eventually(check: Callable[[], Any], timeout: float = 45.0, interval: float = 0.2) -> Any:
    """`check()`'s first truthy result; fails with the last one (or the last exception) after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as e:
            last = e
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout}s: {last!r}")
        time.sleep(interval)


def workflow(name: str, steps: dict[str, dict[str, Any]], partitions: int = 4, **spec: Any) -> dict[str, Any]:
    """A Workflow manifest."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "image": "example.com/orders:1.4",
            "entrypoint": "orders.workflow:builder",
            "store": {"secretRef": {"name": "pg", "key": "dsn"}},
            "streamer": {"bootstrapServers": "kafka:9092", "partitions": partitions},
            "steps": steps,
            **spec,
        },
    }


LEASE_SECONDS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    def __init__(self, name: str, namespace: str, lease: str, kubeconfig: str, seconds: int = LEASE_SECONDS) -> None:
        self.name = name
        self.port = free_port()
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop(), it outlives __init__)
        env = {**os.environ, "KUBECONFIG": kubeconfig, "POD_NAME": name, "POD_NAMESPACE": namespace}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor_operator",
                "--namespace",
                namespace,
                "--leader-election",
                "--leader-election-lease",
                lease,
                "--lease-duration",
                str(seconds),
                "--liveness",
                f"http://127.0.0.1:{self.port}/healthz",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: nobody reads a pipe while the operator runs, and a full one would block its logging
            # (and so the operator) once it has logged 64 KiB, as it does through an API server restart.
            stderr=self._log,
            text=True,
        )

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:  # a 503 (urllib's HTTPError) included
            return False

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """Its /metrics, parsed as Prometheus parses it: series name -> sorted labels -> value."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._log.close()
