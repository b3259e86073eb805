"""The Workflow and WorkflowRun resources as pydantic models: the one source of their CRDs' OpenAPI schemas (field
descriptions are what `kubectl explain` prints), and what the reconciler parses a manifest into.

Python names are snake_case; the manifest's names are the camelCase aliases. Rules that OpenAPI cannot state are
CEL `x-kubernetes-validations` attached here, next to the fields they guard, so the API server refuses a bad
manifest before the operator ever sees it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from conveyor.kubernetes import STRANDED_STATUSES_LIMIT

# Go's time.ParseDuration syntax (what the reference's options take): "30s", "1m30s", "250ms", "1.5h", "0".
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"
# A status enum member's name; it ends with a letter or digit because it is also a label value.
STATUS_NAME_PATTERN = r"^[A-Za-z]([A-Za-z0-9_]{0,61}[A-Za-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENTRYPOINT_PATTERN = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)
# controller-gen's schema for resource.Quantity: an integer or a string such as "500m" or "1Gi".
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
MAX_STEPS = 64
MAX_PARTITIONS = 10_000
# A graph of MAX_STEPS steps with long status names stays far below this; etcd's object limit is 1.5 MiB.
MAX_GRAPH = 65_536

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
StatusName = Annotated[str, StringConstraints(pattern=STATUS_NAME_PATTERN, max_length=63)]
DnsName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]
# The only free-form field of the CRDs: a user's object, whose shape only the user's code knows.
OpaqueObject = Annotated[
    dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
]
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


def _cel(rule: str, message: str | None = None, **more: str) -> JsonDict:
    found: JsonDict = {"rule": rule, **more}
    if message is not None:
        found["message"] = message
    return found


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class SecretKeyRef(_Model):
    """A key of a Secret in the Workflow's namespace."""

    name: DnsName = Field(description="Name of the Secret, in the Workflow's namespace.")
    key: str = Field(
        description="Key in the Secret whose value is used.", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$"
    )


class StoreSpec(_Model):
    """Where runs are stored: PostgreSQL (the schema is created once with `conveyor db migrate`)."""

    secret_ref: SecretKeyRef = Field(
        description="Secret key holding the PostgreSQL DSN (postgresql://user:password@host:5432/db); workers "
        "get it as CONVEYOR_PG_DSN."
    )


class StreamerSpec(_Model):
    """The Kafka cluster events go through."""

    bootstrap_servers: str = Field(
        description="Kafka bootstrap servers, host:port[,host:port...].",
        min_length=1,
        max_length=1024,
        pattern=r"^[^\s,]+(,[^\s,]+)*$",
    )
    partitions: int = Field(
        description="Partitions of each status topic (used when a topic is created). Every step's parallelCount "
        "must be at most this: each shard reads its own partitions.",
        ge=1,
        le=MAX_PARTITIONS,
    )
    config_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding librdkafka settings for the workers' Kafka clients (TLS, SASL, tuning) as a "
        'JSON object, e.g. {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": '
        '"...", "sasl.password": "...", "ssl.ca.pem": "..."}; workers get it as CONVEYOR_KAFKA_CONFIG. Consumer '
        "groups, offset commits, acks and idempotence are conveyor's and are refused.",
    )


class StepSpec(_Model):
    """How one step (keyed by its from-status name) is run. Unset options take the reference's defaults."""

    parallel_count: int = Field(
        1,
        description="Shards of the step: one Deployment (one role, `{workflow}-{status}-consumer-{k}-of-{n}`) per "
        "shard. At most spec.streamer.partitions. Editing it moves partitions between shards without losing or "
        "repeating an event.",
        ge=1,
        le=MAX_PARTITIONS,
    )
    replicas_per_shard: int = Field(
        1,
        description="Pods per shard: one holds the shard's Lease, the others are hot standbys that take over "
        "when it dies.",
        ge=1,
        le=16,
    )
    pause_after_err_count: int | None = Field(
        None, description="Pause a run after this many errors of the step on it (0 never pauses).", ge=0
    )
    err_back_off: Duration | None = Field(
        None, description="Wait after an error before the event is tried again, as a Go duration (e.g. 30s)."
    )
    polling_frequency: Duration | None = Field(
        None, description="How often the step's consumer polls when idle, as a Go duration (e.g. 500ms)."
    )
    lag_alert: Duration | None = Field(
        None, description="Consumer lag beyond which the lag-alert metric is raised, as a Go duration (e.g. 5m)."
    )
    consume_lag: Duration | None = Field(
        None, description="Only consume events at least this old, as a Go duration (e.g. 10m)."
    )
    max_in_flight: int | None = Field(
        None,
        description="Events of different foreign ids the shard handles at once (1 is one at a time).",
        ge=1,
        le=4096,
    )


class Resources(_Model):
    """Compute resources of each worker container (a core/v1 ResourceRequirements without claims)."""

    limits: dict[str, Quantity] | None = Field(
        None, description="Most compute resources allowed, e.g. {memory: 512Mi}.", max_length=16
    )
    requests: dict[str, Quantity] | None = Field(
        None, description="Compute resources reserved, e.g. {cpu: 100m, memory: 128Mi}.", max_length=16
    )


_PARALLEL_COUNT_RULE = _cel(
    "self.steps.all(s, self.steps[s].parallelCount <= self.streamer.partitions)",
    # A message naming the offending step would filter the map's keys, whose length the API server cannot bound: it
    # refuses such a messageExpression as too costly. The field path and the rule are named instead.
    fieldPath=".steps",
    reason="FieldValueInvalid",
    message="every step's parallelCount must be at most spec.streamer.partitions: each shard reads partitions of "
    "its own",
)


class WorkflowSpec(_Model):
    """The desired workflow: the image with the user's code, where runs and events live, and how each step runs."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_PARALLEL_COUNT_RULE]})

    image: str = Field(
        description="Container image holding the user's code and conveyor, e.g. example.com/orders:1.4.",
        min_length=1,
        max_length=512,
    )
    entrypoint: str = Field(
        description="module:attribute of the conveyor Builder in the image, e.g. orders.workflow:builder.",
        max_length=256,
        pattern=ENTRYPOINT_PATTERN,
    )
    store: StoreSpec = Field(description="The record store (PostgreSQL).")
    streamer: StreamerSpec = Field(description="The event streamer (Kafka).")
    steps: dict[str, StepSpec] = Field(
        description="The steps, keyed by from-status name (the status enum member's name, e.g. CREATED); they "
        "must match the steps the entrypoint's Builder declares.",
        min_length=1,
        max_length=MAX_STEPS,
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"self.all(s, s.matches('{STATUS_NAME_PATTERN}'))",
                    "keys must be status names: a letter, then letters, digits or underscores, at most 63, "
                    "not ending with an underscore",
                    reason="FieldValueInvalid",
                )
            ]
        },
    )
    debug: bool = Field(False, description="Log every decision of the workers with its run id (CONVEYOR_DEBUG).")
    resources: Resources | None = Field(
        None,
        description="Compute resources of each worker; defaults to requests cpu 25m, memory 128Mi and limit "
        "memory 512Mi.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="Pull policy of the image; Kubernetes' default when unset."
    )
    service_account_name: DnsName | None = Field(
        None,
        description="ServiceAccount of the workers; it needs get, list, create and update on leases in this namespace.",
    )


class Condition(_Model):
    """A meta/v1 Condition: one aspect of the object's state."""

    type: str = Field(
        description="Ready, Progressing or Degraded.", max_length=316, pattern=r"^[A-Za-z][A-Za-z0-9_.\-/]*$"
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="Why, in CamelCase.",
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field("", description="Details for humans.", max_length=32768)
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(None, description="metadata.generation this was set for.", ge=0)


_CONDITIONS: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


class StepStatus(_Model):
    """Shards of one step."""

    name: str = Field(description="The step's from-status name.", max_length=63)
    desired_shards: int = Field(description="Shards the spec asks for (parallelCount).", ge=0)
    ready_shards: int = Field(description="Shards whose Deployment is rolled out with every replica ready.", ge=0)


class StrandedRunsStatus(_Model):
    """Active runs at one status that no step, callback or timeout of the running code moves."""

    status: str = Field(
        description="The status's name in the running code, or its number when the code has no such status.",
        min_length=1,
        max_length=63,
    )
    value: int = Field(description="The status's number, as the runs store it.")
    count: int = Field(description="How many active (initiated, running or paused) runs are at it.", ge=1)
    since: datetime | None = Field(
        None, description="The earliest last update among them: since then the longest-waiting has not moved."
    )


class WorkflowStatus(_Model):
    """What the operator observed and did; graph and strandedRuns are the system worker's, from the code."""

    observed_generation: int | None = Field(None, description="metadata.generation last reconciled.", ge=0)
    conditions: list[Condition] | None = Field(
        None,
        description="Ready, Progressing, Degraded (reasons include RolloutStuck, ReplicaFailure, CodeMismatch: a "
        "worker found that the code's steps differ from spec.steps, and its message says which; WorkerCrashLooping; "
        "and StrandedRuns: strandedRuns is not empty).",
        max_length=8,
        json_schema_extra=_CONDITIONS,
    )
    steps: list[StepStatus] | None = Field(
        None,
        description="Ready and desired shards per step.",
        max_length=MAX_STEPS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    shards: str | None = Field(None, description="Ready/desired shards over all steps, e.g. 3/5.", max_length=32)
    graph: str | None = Field(
        None,
        description="The workflow's state diagram as mermaid text, from its code: published by its system worker "
        "(the operator has no user code). Render it with any mermaid viewer, or `conveyor graph`.",
        max_length=MAX_GRAPH,
    )
    stranded_runs: list[StrandedRunsStatus] | None = Field(
        None,
        description="Active runs at statuses that no step, callback or timeout of the running code moves, per "
        "status, as the system worker last counted them (at start, then every 30 s); absent when there are none. "
        "While there are some the Workflow is Degraded (StrandedRuns). Nothing is done to them: put the status's "
        "step back until they drain, or move them (`conveyor runs fork`).",
        max_length=STRANDED_STATUSES_LIMIT,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["value"]},
    )


def _immutable(what: str) -> JsonDict:
    return {"x-kubernetes-validations": [_cel("self == oldSelf", f"{what} is immutable")]}


RunStateName = Literal[
    "Unknown", "Initiated", "Running", "Paused", "Cancelled", "Completed", "DataDeleted", "RequestedDataDeleted"
]


class WorkflowRunSpec(_Model):
    """One run of a Workflow, triggered once, and what should happen to it."""

    workflow: str = Field(
        description="Name of the Workflow (same namespace) to run. Immutable.",
        min_length=1,
        max_length=63,
        pattern=DNS_SUBDOMAIN_PATTERN,
        json_schema_extra=_immutable("workflow"),
    )
    foreign_id: str = Field(
        alias="foreignID",
        description="The run's foreign id (e.g. the order id): one active run per workflow and foreign id. Immutable.",
        min_length=1,
        max_length=255,
        json_schema_extra=_immutable("foreignID"),
    )
    start_at: StatusName | None = Field(
        None, description="Status name the run starts at; the workflow's first step's status when unset."
    )
    object: OpaqueObject | None = Field(
        None,
        description="The run's initial object, as JSON for the workflow's object type; its zero value when unset.",
    )
    state: Literal["Running", "Paused", "Cancelled", "DataDeleted"] = Field(
        "Running",
        description="What the run should be: Running (resumes a paused run), Paused, Cancelled (final), or "
        "DataDeleted (its object is erased; final).",
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "oldSelf != 'Cancelled' || self in ['Cancelled', 'DataDeleted']",
                    "a Cancelled run can only have its data deleted",
                ),
                _cel("oldSelf != 'DataDeleted' || self == 'DataDeleted'", "a DataDeleted run stays DataDeleted"),
            ]
        },
    )
    ttl_seconds_after_finished: int | None = Field(
        None,
        description="Delete this WorkflowRun this many seconds after its run finished (the run stays in "
        "PostgreSQL); kept when unset.",
        ge=0,
    )


class WorkflowRunStatus(_Model):
    """The run as stored, mirrored."""

    observed_generation: int | None = Field(None, description="metadata.generation last reconciled.", ge=0)
    run_id: str | None = Field(None, alias="runID", description="The run's id.", max_length=255)
    run_state: RunStateName | None = Field(None, description="The run's state.")
    status: str | None = Field(None, description="The run's current status name.", max_length=63)
    phase: Literal["Pending", "Running", "Paused", "Succeeded", "Cancelled", "DataDeleted", "Failed"] | None = Field(
        None, description="Summary for humans."
    )
    created_at: datetime | None = Field(None, description="When the run was created.")
    updated_at: datetime | None = Field(None, description="When the run last changed.")
    finished_at: datetime | None = Field(None, description="When the run finished.")
    conditions: list[Condition] | None = Field(
        None,
        description="Triggered (reasons Triggered, InvalidObject, InvalidStartAt, RunInProgress, WorkflowNotFound), "
        "StateApplied (StateApplied, InvalidTransition) and Finished (the run state).",
        max_length=8,
        json_schema_extra=_CONDITIONS,
    )
