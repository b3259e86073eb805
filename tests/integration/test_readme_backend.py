"""The README's "start a run from your web backend" example, run as written (only the DSN is this test's) on
FastAPI's TestClient against the real Postgres: the lifespan opens the client's store, a retried request returns
the same run, a bad body is refused, the run reads back typed, and a control the run's state does not allow is a
409 with InvalidTransition's words. The example's workflow is the shipped one (examples/order_processing)."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import ROOT

EXAMPLE = ROOT / "examples" / "order_processing"


def readme_backend() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"Start a run from your web backend.*?```python\n(.*?)```", text, re.DOTALL)
    assert found, "the README's web backend example is missing"
    return found.group(1)


@pytest.fixture
def backend(pg_dsn: str) -> Iterator[Any]:
    code = readme_backend()
    assert '"postgresql://conveyor@db:5432/conveyor"' in code
    sys.path.insert(0, str(EXAMPLE))
    try:
        namespace: dict[str, Any] = {"__name__": "readme_backend"}
        exec(compile(code.replace("postgresql://conveyor@db:5432/conveyor", pg_dsn), "README.md", "exec"), namespace)
        with TestClient(namespace["app"]) as http:
            yield http
    finally:
        sys.path.remove(str(EXAMPLE))


def test_the_readme_backend_starts_reads_and_refuses(backend: Any) -> None:
    order_id = uuid.uuid4().hex[:12]
    placed = backend.post(f"/orders/{order_id}", json={"id": order_id, "amount_cents": 1250})
    assert placed.status_code == 200, placed.text
    run_id = placed.json()["run_id"]
    assert run_id == f"order-{order_id}"
    again = backend.post(f"/orders/{order_id}", json={"id": order_id, "amount_cents": 1250})
    assert again.json() == {"run_id": run_id}
    assert backend.post(f"/orders/{order_id}x", json={"amount_cents": "lots"}).status_code == 422
    shown = backend.get(f"/orders/runs/{run_id}")
    assert shown.json() == {"status": "CREATED", "state": "INITIATED", "paid": False}
    assert backend.get("/orders/runs/no-such-run").status_code == 404
    refused = backend.post(f"/orders/runs/{run_id}/cancel", params={"reason": "changed my mind"})
    assert refused.status_code == 409
    assert "cannot move from INITIATED to CANCELLED" in refused.json()["detail"]
