"""The OpenAPI 3.1 description of the UI's JSON API, served at /api/openapi.json for API clients and code
generators. Written by hand (the API is small) from the same constants the handlers check, and tested against
the app's routes and its answers so it cannot drift."""

from __future__ import annotations

from typing import Any

from conveyor._core.runstate import RunState
from conveyor._engine.checks import MAX_REASON
from conveyor._engine.client import CONTROLS
from conveyor._engine.run_filters import MAX_FOREIGN_ID, MAX_NAME, MAX_STATUS, RUN_STATES
from conveyor.ui._csrf import HEADER
from conveyor.ui._query import DEFAULT_LIMIT, MAX_LIMIT

_TEXT = {"type": "string"}
_WHEN = {"type": "string", "format": "date-time"}

RUN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "run_id",
        "workflow_name",
        "foreign_id",
        "status",
        "status_name",
        "run_state",
        "run_state_reason",
        "status_description",
        "version",
        "trace_origin",
        "forked_from",
        "created_at",
        "updated_at",
        "object",
        "object_encoding",
    ],
    "additionalProperties": False,
    "properties": {
        "run_id": _TEXT,
        "workflow_name": _TEXT,
        "foreign_id": _TEXT,
        "status": {"type": "integer"},
        "status_name": {"type": ["string", "null"], "description": "null unless the UI knows the workflow"},
        "run_state": {"enum": [s.name for s in RunState]},
        "run_state_reason": _TEXT,
        "status_description": _TEXT,
        "version": {"type": "integer"},
        "trace_origin": _TEXT,
        "forked_from": {
            "description": "the run this one was forked from (`conveyor runs fork`, the UI's Fork) and the status it "
            "was forked at; null for a run that was not forked",
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["run_id", "status", "status_name"],
                    "additionalProperties": False,
                    "properties": {
                        "run_id": _TEXT,
                        "status": {"type": "integer"},
                        "status_name": {"type": ["string", "null"]},
                    },
                },
            ],
        },
        "created_at": _WHEN,
        "updated_at": _WHEN,
        "object": {"description": "the object: JSON, text or base64 (see object_encoding); null once deleted"},
        "object_encoding": {"enum": ["json", "text", "base64", None]},
    },
}

_STATUS = {
    "type": "object",
    "required": ["name", "value"],
    "additionalProperties": False,
    "properties": {"name": _TEXT, "value": {"type": "integer"}},
}

WORKFLOW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "statuses", "transitions", "mermaid"],
    "additionalProperties": False,
    "properties": {
        "name": _TEXT,
        "statuses": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "value", "start", "terminal"],
                "additionalProperties": False,
                "properties": {
                    "name": _TEXT,
                    "value": {"type": "integer"},
                    "start": {"type": "boolean", "description": "a run can start here"},
                    "terminal": {"type": "boolean", "description": "a run ends here"},
                },
            },
        },
        "transitions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["from", "to", "by"],
                "additionalProperties": False,
                "properties": {
                    "from": _STATUS,
                    "to": _STATUS,
                    "by": {"type": "array", "items": {"enum": ["step", "callback", "timeout"]}},
                },
            },
        },
        "mermaid": {"type": "string", "description": "the graph as a mermaid state diagram"},
    },
}

_AGE = {"type": ["number", "null"], "minimum": 0, "description": "seconds since the oldest's update; null if none"}

_STATUS_WAIT: dict[str, Any] = {
    "type": "object",
    "required": [
        "status",
        "status_name",
        "in_graph",
        "lag_alert_seconds",
        "active",
        "oldest",
        "age_seconds",
        "over_lag_alert",
        "run_states",
    ],
    "additionalProperties": False,
    "properties": {
        "status": {"type": "integer"},
        "status_name": {"type": ["string", "null"], "description": "null for a number the code no longer has"},
        "in_graph": {"type": "boolean"},
        "lag_alert_seconds": {
            "type": ["number", "null"],
            "description": "the lag alert of the status's step; null where no step consumes the status",
        },
        "active": {"type": "integer", "minimum": 0, "description": "initiated, running and paused runs here"},
        "oldest": {"type": ["string", "null"], "format": "date-time"},
        "age_seconds": _AGE,
        "over_lag_alert": {"type": "boolean", "description": "some run here has waited longer than the lag alert"},
        "run_states": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["run_state", "count", "oldest", "age_seconds", "over_lag_alert"],
                "additionalProperties": False,
                "properties": {
                    "run_state": {"enum": ["INITIATED", "RUNNING", "PAUSED"]},
                    "count": {"type": "integer", "minimum": 0},
                    "oldest": {"type": ["string", "null"], "format": "date-time"},
                    "age_seconds": _AGE,
                    "over_lag_alert": {"type": "boolean"},
                },
            },
        },
    },
}

_PATH = {
    "type": "array",
    "description": "the statuses the run visited, in order (from its history)",
    "items": {
        "type": "object",
        "required": ["status", "status_name"],
        "additionalProperties": False,
        "properties": {"status": {"type": "integer"}, "status_name": {"type": ["string", "null"]}},
    },
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": _TEXT, "field": {"type": "string", "description": "the bad parameter (400 only)"}},
}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def _query(name: str, schema: dict[str, Any], description: str, *, repeatable: bool = False) -> dict[str, Any]:
    if repeatable:
        schema = {"type": "array", "items": schema, "maxItems": 20}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document() -> dict[str, Any]:
    run = {"$ref": "#/components/schemas/Run"}
    run_id = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": MAX_NAME}}
    csrf_header = {
        "name": HEADER,
        "in": "header",
        "required": True,
        "description": "the token of GET /api/csrf, sent with its cookie from the UI's origin",
        "schema": {"type": "string"},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "conveyor ui", "version": "1", "description": "Runs of conveyor workflows."},
        "paths": {
            "/api/runs": {
                "get": {
                    "summary": "A page of runs, newest first unless order=asc",
                    "parameters": [
                        _query("workflow", {"type": "string", "maxLength": MAX_NAME}, "the workflow's name"),
                        _query(
                            "status",
                            {"type": "string"},
                            f"a status number (1 to {MAX_STATUS}) or, with a known workflow, its name; "
                            "several may be given, or separated by commas",
                            repeatable=True,
                        ),
                        _query(
                            "run_state",
                            {"type": "string"},
                            f"a run state's name (any case; words joined by _, - or spaces) or number "
                            f"(1 to {len(RUN_STATES)}): {', '.join(s.name for s in RUN_STATES)}; "
                            "several may be given, or separated by commas",
                            repeatable=True,
                        ),
                        _query(
                            "foreign_id",
                            {"type": "string", "maxLength": MAX_FOREIGN_ID},
                            "a foreign id",
                            repeatable=True,
                        ),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                            "runs per page",
                        ),
                        _query("cursor", {"type": "string"}, "next_cursor of the previous answer: the next page"),
                        _query("before", {"type": "string"}, "prev_cursor of the previous answer: the page before"),
                        _query("order", {"enum": ["desc", "asc"], "default": "desc"}, "by creation"),
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["runs", "next_cursor", "prev_cursor", "limit"],
                                "properties": {
                                    "runs": {"type": "array", "items": run},
                                    "next_cursor": {"type": ["string", "null"]},
                                    "prev_cursor": {"type": ["string", "null"]},
                                    "limit": {"type": "integer"},
                                },
                            },
                            "the page",
                        ),
                        "400": _error("a bad parameter, named in `field`"),
                    },
                }
            },
            "/api/runs/{run_id}": {
                "get": {
                    "summary": "A run, its history (oldest first) and the actions its state allows",
                    "parameters": [run_id],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["run", "history", "path", "actions"],
                                "properties": {
                                    "run": run,
                                    "history": {"type": "array", "items": run},
                                    "path": _PATH,
                                    "actions": {
                                        "type": "array",
                                        "items": {"enum": [*CONTROLS, "fork"]},
                                        "description": "empty when actions are disabled",
                                    },
                                },
                            },
                            "the run",
                        ),
                        "400": _error("a bad run id"),
                        "404": _error("no such run"),
                    },
                }
            },
            "/api/runs/{run_id}/fork": {
                "post": {
                    "summary": "Start a new run from a stopped run at a status it reached, with the object it had "
                    "there or a replacement; a paused run is cancelled in the same transaction (needs "
                    "--allow-actions and the workflow's code)",
                    "parameters": [
                        run_id,
                        csrf_header,
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "status": {
                                            "type": ["string", "integer"],
                                            "description": "a status the run reached, by name or number (default: "
                                            "where it is)",
                                        },
                                        "object": {"description": "the new run's object (default: the run's there)"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json(
                            {
                                "type": "object",
                                "required": ["run", "forked_from"],
                                "properties": {"run": run, "forked_from": run},
                            },
                            "the new run, and the run it was forked from as it is now",
                        ),
                        "400": _error("a bad body, status or object, or a workflow the UI has no code of"),
                        "403": _error("actions are disabled, or the request failed the cross-site checks"),
                        "404": _error("no such run"),
                        "409": _error(
                            "the run is active or its data was deleted, or its foreign id has a run in "
                            "progress; nothing changed"
                        ),
                    },
                }
            },
            "/api/runs/{run_id}/{action}": {
                "post": {
                    "summary": "Pause, resume, cancel or request deletion of a run's data (needs --allow-actions)",
                    "parameters": [
                        run_id,
                        {"name": "action", "in": "path", "required": True, "schema": {"enum": list(CONTROLS)}},
                        csrf_header,
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"reason": {"type": "string", "maxLength": MAX_REASON}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json({"type": "object", "required": ["run"], "properties": {"run": run}}, "done"),
                        "400": _error("a bad action, body or reason"),
                        "403": _error("actions are disabled, or the request failed the cross-site checks"),
                        "404": _error("no such run"),
                        "409": _error("the run's state does not allow it; nothing changed"),
                    },
                }
            },
            "/api/workflows": {
                "get": {
                    "summary": "The workflows the UI was given: statuses, transitions and mermaid text",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["workflows"],
                                "properties": {
                                    "workflows": {"type": "array", "items": {"$ref": "#/components/schemas/Workflow"}}
                                },
                            },
                            "the workflows",
                        ),
                        "400": _error("a query parameter (this takes none)"),
                    },
                }
            },
            "/api/workflows/{name}": {
                "get": {
                    "summary": "Where a workflow's runs wait: active runs per status and run state, the oldest's "
                    "age against the lag alert, and the newest paused runs",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": MAX_NAME},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["workflow", "now", "statuses", "paused", "paused_limit"],
                                "additionalProperties": False,
                                "properties": {
                                    "workflow": {"$ref": "#/components/schemas/Workflow"},
                                    "now": {**_WHEN, "description": "the time the ages are measured at"},
                                    "statuses": {
                                        "type": "array",
                                        "items": _STATUS_WAIT,
                                        "description": "every status of the graph in order, then any other status "
                                        "active runs sit at",
                                    },
                                    "paused": {
                                        "type": "array",
                                        "items": run,
                                        "description": "paused runs, newest first, at most paused_limit",
                                    },
                                    "paused_limit": {"type": "integer"},
                                },
                            },
                            "the workflow's waiting runs",
                        ),
                        "400": _error("a bad name, or a query parameter (this takes none)"),
                        "404": _error("no such workflow was given to the UI"),
                    },
                }
            },
            "/api/csrf": {
                "get": {
                    "summary": f"A token for {HEADER}; sets the cookie it must travel with",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["token", "header"],
                                "properties": {"token": _TEXT, "header": _TEXT},
                            },
                            "the token",
                        ),
                        "400": _error("a query parameter (this takes none)"),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": _json({"type": "object"}, "OpenAPI 3.1"),
                        "400": _error("a query parameter (this takes none)"),
                    },
                }
            },
        },
        "components": {"schemas": {"Run": RUN_SCHEMA, "Workflow": WORKFLOW_SCHEMA, "Error": _ERROR}},
    }
