"""make_app: its public name, and bad arguments refused naming the argument."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

import conveyor.ui
from conveyor.adapters.memory import MemoryRecordStore
from conveyor.errors import InvalidInput
from conveyor.ui import make_app
from tests.ui.conftest import make_spec


def test_public_names() -> None:
    assert conveyor.ui.__all__ == ["UIRunner", "make_app"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"store": object()}, "store"),
        ({"workflows": [object()]}, "workflows"),
        ({"workflows": {"other-name": make_spec("parcels")}}, "workflows"),
        ({"allow_actions": "yes"}, "allow_actions"),
        ({"allowed_hosts": "ui.example.com"}, "allowed_hosts"),
        ({"allowed_hosts": ["https://ui.example.com"]}, "allowed_hosts"),
        ({"allowed_hosts": ["ui.example.com:8080"]}, "allowed_hosts"),
        ({"allowed_hosts": [""]}, "allowed_hosts"),
        ({"allowed_hosts": [7]}, "allowed_hosts"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any], field: str) -> None:
    store = kwargs.pop("store", MemoryRecordStore())
    with pytest.raises(InvalidInput) as info:
        make_app(store, **kwargs)
    assert info.value.field == field


async def test_workflows_by_name_and_a_registry_of_ones_own() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    registry = CollectorRegistry()
    Counter("ui_test_things", "things", registry=registry).inc(3)
    spec = make_spec("parcels")
    app = make_app(MemoryRecordStore(), workflows={"parcels": spec}, registry=registry)
    async with TestClient(TestServer(app)) as client:
        assert "ui_test_things_total 3.0" in await (await client.get("/metrics")).text()
        body = await (await client.get("/api/workflows")).json()
        assert [w["name"] for w in body["workflows"]] == ["parcels"]
