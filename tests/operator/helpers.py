"""Helpers of the operator tests: polling for an outcome, and Workflow manifests."""

from __future__ import annotations

import time
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
