"""The public names are a promise: this pins them, so adding or removing one is a deliberate change."""

from types import ModuleType

import pytest

import conveyor
import conveyor.adapters.base
import conveyor.adapters.kafka
import conveyor.adapters.kubernetes
import conveyor.adapters.memory
import conveyor.adapters.postgres
import conveyor.errors
import conveyor.testing

# Every adapter package and the adapter authors' module: each is pinned below, and each must show nothing public
# beyond its __all__ (a helper only tests use is imported from its private module instead).
ADAPTER_PACKAGES = (
    conveyor.adapters.base,
    conveyor.adapters.memory,
    conveyor.adapters.postgres,
    conveyor.adapters.kafka,
    conveyor.adapters.kubernetes,
)


def test_conveyor() -> None:
    assert sorted(conveyor.__all__) == sorted(
        [
            "Builder",
            "CancelRun",
            "Client",
            "Clock",
            "Codec",
            "Meta",
            "Options",
            "SortOrder",
            "PauseRun",
            "ProcessInfo",
            "ProcessKind",
            "Record",
            "RecordFilter",
            "Run",
            "RunPage",
            "RunState",
            "SaveAndRepeat",
            "Skip",
            "StrandedRuns",
            "SystemClock",
            "Workflow",
            "__version__",
            "duration_timer",
            "register_codec",
            "time_timer",
        ]
    )


def test_errors() -> None:
    assert sorted(conveyor.errors.__all__) == sorted(
        [
            "AccessDenied",
            "ConveyorError",
            "ForkRefused",
            "InvalidInput",
            "InvalidObject",
            "InvalidStatus",
            "InvalidTransition",
            "InvalidWorkflow",
            "RecordNotFound",
            "RoleLost",
            "SchemaNotMigrated",
            "ServiceUnavailable",
            "StaleRead",
            "TimeoutNotFound",
            "VersionConflict",
            "WorkflowInProgress",
            "WorkflowNotRunning",
        ]
    )
    for name in conveyor.errors.__all__:
        assert issubclass(getattr(conveyor.errors, name), conveyor.errors.ConveyorError)


def test_adapter_base() -> None:
    # New protocols and helpers for adapter authors are added here as they are added to conveyor.adapters.base.
    assert sorted(conveyor.adapters.base.__all__) == sorted(
        [
            "HEADER_CONNECTOR_DATA",
            "HEADER_FOREIGN_ID",
            "HEADER_RECORD_VERSION",
            "HEADER_RUN_ID",
            "HEADER_RUN_STATE",
            "HEADER_TOPIC",
            "HEADER_WORKFLOW_NAME",
            "Clock",
            "Connector",
            "ConnectorConsumer",
            "ConnectorEvent",
            "Event",
            "EventReceiver",
            "EventSender",
            "EventStreamer",
            "FencingRoleScheduler",
            "Meta",
            "OutboxBatchDeleter",
            "OutboxEvent",
            "OutboxSignal",
            "OutgoingEvent",
            "Record",
            "RecordFilter",
            "RecordStore",
            "RoleLease",
            "RoleScheduler",
            "RunState",
            "Shard",
            "ShardOwningReceiver",
            "SortOrder",
            "StatusCount",
            "SystemClock",
            "TimeoutRecord",
            "TimeoutStore",
            "decode_outbox_data",
            "delete_topic",
            "encode_outbox_event",
            "event_headers",
            "event_topic",
            "outbox_data",
            "outbox_event",
            "run_state_change_topic",
            "shard_of",
            "topic",
        ]
    )


def test_memory_adapters() -> None:
    assert sorted(conveyor.adapters.memory.__all__) == sorted(
        [
            "MemoryConnector",
            "MemoryRecordStore",
            "MemoryRoleScheduler",
            "MemoryStreamer",
            "MemoryTimeoutStore",
        ]
    )


def test_postgres_adapters() -> None:
    assert sorted(conveyor.adapters.postgres.__all__) == sorted(
        ["PostgresRecordStore", "PostgresTimeoutStore", "migrate"]
    )


def test_kafka_adapter() -> None:
    # murmur2, partition_for and owned_partitions stay in conveyor.adapters.kafka._partitioner: only tests use them.
    assert sorted(conveyor.adapters.kafka.__all__) == sorted(["KafkaStreamer", "group_id"])


def test_kubernetes_adapter() -> None:
    # lease_name stays in conveyor.adapters.kubernetes._names: only tests use it.
    assert conveyor.adapters.kubernetes.__all__ == ["LeaseRoleScheduler"]


@pytest.mark.parametrize("module", ADAPTER_PACKAGES, ids=lambda m: m.__name__)
def test_an_adapter_package_shows_nothing_public_beyond_its_all(module: ModuleType) -> None:
    public = {name for name in vars(module) if not name.startswith("_")}
    assert public - set(module.__all__) == set(), f"{module.__name__} shows names that are not in its __all__"


def test_testing() -> None:
    assert sorted(conveyor.testing.__all__) == sorted(
        [
            "FakeClock",
            "await_status",
            "await_timeout_insert",
            "new_testing_run",
            "require",
            "trigger_callback_on",
        ]
    )


def test_every_public_name_exists() -> None:
    for module in (conveyor, conveyor.errors, *ADAPTER_PACKAGES, conveyor.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_design_names_are_importable() -> None:
    from conveyor import Builder, Client, Run, RunState, duration_timer, time_timer  # noqa: F401
    from conveyor.adapters.base import EventStreamer, RecordStore, RoleScheduler, TimeoutStore  # noqa: F401
    from conveyor.adapters.kafka import KafkaStreamer  # noqa: F401
    from conveyor.adapters.kubernetes import LeaseRoleScheduler  # noqa: F401
    from conveyor.adapters.memory import (  # noqa: F401
        MemoryRecordStore,
        MemoryRoleScheduler,
        MemoryStreamer,
        MemoryTimeoutStore,
    )
    from conveyor.adapters.postgres import PostgresRecordStore, PostgresTimeoutStore  # noqa: F401
    from conveyor.errors import (  # noqa: F401
        ConveyorError,
        InvalidTransition,
        InvalidWorkflow,
        RecordNotFound,
        TimeoutNotFound,
        WorkflowInProgress,
        WorkflowNotRunning,
    )


def test_health() -> None:
    import conveyor.health

    assert conveyor.health.__all__ == ["HealthServer"]


def test_kubernetes() -> None:
    import conveyor.kubernetes

    assert sorted(conveyor.kubernetes.__all__) == sorted(
        [
            "API_VERSION",
            "CODE_MISMATCH",
            "GROUP",
            "MAX_CONDITION_MESSAGE",
            "STRANDED_RUNS",
            "STRANDED_RUNS_FIELD",
            "STRANDED_STATUSES_LIMIT",
            "TERMINATION_LOG",
            "TERMINATION_MESSAGE_LIMIT",
            "VERSION",
            "WORKFLOWS",
            "WORKFLOW_KIND",
            "WORKFLOW_RUNS",
            "WORKFLOW_RUN_KIND",
            "WorkflowRunMirror",
            "add_workflowrun_mirror",
            "condition",
            "conditions_by_type",
            "default_namespace",
            "format_time",
            "stranded_entries",
            "stranded_message",
            "write_termination_message",
        ]
    )
    for name in conveyor.kubernetes.__all__:
        assert hasattr(conveyor.kubernetes, name), f"conveyor.kubernetes.{name}"
