"""Runs and workflows as plain, JSON-ready data: the one shape that `conveyor runs -o json`, `conveyor graph -o
json` and the UI's JSON API all give, so a script written against one reads the others, and a field added is
added everywhere."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from conveyor._core.records import Record
from conveyor._engine.spec import WorkflowSpec
from conveyor._engine.visualise import _how, mermaid

Specs = Mapping[str, WorkflowSpec[Any, Any]]


def status_name(record: Record, specs: Specs, status: int | None = None) -> str | None:
    """The name of the run's status (or of `status`, a status of the run's workflow), or None when its workflow is
    not among `specs` or has no such status."""
    spec = specs.get(record.workflow_name)
    if spec is None:
        return None
    try:
        return str(spec.status_type(record.status if status is None else status).name)
    except ValueError:
        return None


def forked_from_data(record: Record, specs: Specs) -> dict[str, Any] | None:
    """Where a forked run came from (the run and the status it was forked at), or None for a run not forked."""
    meta = record.meta
    if not meta.forked_from:
        return None
    return {
        "run_id": meta.forked_from,
        "status": meta.forked_from_status,
        "status_name": status_name(record, specs, meta.forked_from_status),
    }


def object_data(raw: bytes | None) -> tuple[Any, str | None]:
    """The stored object and how it is given: decoded when it is JSON (the stored form of pydantic objects), as
    text when it is other UTF-8, else base64; (None, None) once the run's data is deleted."""
    if raw is None:
        return None, None
    try:
        return json.loads(raw), "json"
    except ValueError:  # UnicodeDecodeError included
        pass
    try:
        return raw.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"


def record_data(record: Record, specs: Specs, *, with_object: bool = True) -> dict[str, Any]:
    """A run (or one version of it from its history) with its status's name where `specs` know it."""
    data: dict[str, Any] = {
        "run_id": record.run_id,
        "workflow_name": record.workflow_name,
        "foreign_id": record.foreign_id,
        "status": record.status,
        "status_name": status_name(record, specs),
        "run_state": record.run_state.name,
        "run_state_reason": record.meta.run_state_reason,
        "status_description": record.meta.status_description,
        "version": record.meta.version,
        "trace_origin": record.meta.trace_origin,
        "forked_from": forked_from_data(record, specs),
        "created_at": record.created_at.astimezone(UTC).isoformat(),
        "updated_at": record.updated_at.astimezone(UTC).isoformat(),
    }
    if with_object:
        data["object"], data["object_encoding"] = object_data(record.object)
    return data


def workflow_data(spec: WorkflowSpec[Any, Any], direction: str = "LR") -> dict[str, Any]:
    """A workflow's graph: its statuses (which start runs, which end them), its transitions and what makes each
    (step, callback, timeout), and the same as mermaid text."""
    graph, status_type = spec.graph, spec.status_type

    def named(value: int) -> dict[str, Any]:
        return {"name": status_type(value).name, "value": value}

    return {
        "name": spec.name,
        "statuses": [{**named(v), "start": v in graph.starting, "terminal": graph.is_terminal(v)} for v in graph.nodes],
        "transitions": [
            {"from": named(s), "to": named(t), "by": [k for k in _how(spec, s, t).split(" / ") if k]}
            for s in graph.nodes
            for t in graph.transitions(s)
        ],
        "mermaid": mermaid(spec, direction),
    }
