"""The public names are a promise: this pins them, so adding or removing one is a deliberate change."""

import conveyor
import conveyor.adapters.base
import conveyor.adapters.memory
import conveyor.errors
import conveyor.testing


def test_conveyor() -> None:
    assert sorted(conveyor.__all__) == sorted(
        [
            "Builder",
            "CancelRun",
            "Clock",
            "Codec",
            "Meta",
            "Options",
            "SortOrder",
            "PauseRun",
            "Record",
            "RecordFilter",
            "Run",
            "RunState",
            "SaveAndRepeat",
            "Skip",
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
    for module in (
        conveyor,
        conveyor.errors,
        conveyor.adapters.base,
        conveyor.adapters.memory,
        conveyor.testing,
    ):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_design_names_are_importable() -> None:
    from conveyor import Builder, Run, RunState, duration_timer, time_timer  # noqa: F401
    from conveyor.adapters.memory import (  # noqa: F401
        MemoryRecordStore,
        MemoryRoleScheduler,
        MemoryStreamer,
        MemoryTimeoutStore,
    )
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
            "TERMINATION_LOG",
            "TERMINATION_MESSAGE_LIMIT",
            "VERSION",
            "WORKFLOWS",
            "WORKFLOW_KIND",
            "WORKFLOW_RUNS",
            "WORKFLOW_RUN_KIND",
            "condition",
            "conditions_by_type",
            "default_namespace",
            "format_time",
            "write_termination_message",
        ]
    )
    for name in conveyor.kubernetes.__all__:
        assert hasattr(conveyor.kubernetes, name), f"conveyor.kubernetes.{name}"
