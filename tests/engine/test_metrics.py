"""The engine's Prometheus metrics: the reference's names, types, help texts, labels and buckets, and each one
recorded when the reference records it (read back from the default registry, where any exporter finds them).

Every test uses a workflow name of its own: the registry is the process's, shared by every test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from conveyor import Builder, Run, RunState, Skip, Workflow, duration_timer
from conveyor._engine import metrics
from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer, MemoryTimeoutStore
from conveyor.testing import FakeClock
from tests.engine._orders import Order, Status
from tests.helpers import unique, until

LAG = "workflow_process_lag_seconds"
LAG_ALERT = "workflow_process_lag_alert"
STATES = "workflow_process_states"
LATENCY = "workflow_process_latency_seconds"
ERRORS = "workflow_process_error_count"
SKIPPED = "workflow_process_skipped_events_count"
CHANGES = "workflow_run_state_changes"
ROLE_HELD = "conveyor_role_held"

IDLE, RUNNING, SHUTDOWN = 3.0, 2.0, 1.0


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


class Env:
    """Memory adapters whose events are stamped by `stream_clock` while the workflow reads `clock`: moving one
    against the other makes events as old as a test needs."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.stream_clock = FakeClock(self.clock.now() - timedelta(hours=1))
        self.streamer = MemoryStreamer(clock=self.stream_clock)
        self.store = MemoryRecordStore(clock=self.clock)
        self.roles = MemoryRoleScheduler()
        self.timeouts = MemoryTimeoutStore(clock=self.clock)
        self.started: list[Workflow[Any, Any]] = []

    async def start(self, b: Builder[Any, Any], **kwargs: Any) -> Workflow[Any, Any]:
        kwargs.setdefault("timeout_store", self.timeouts)
        kwargs.setdefault("clock", self.clock)
        wf = b.build(self.streamer, self.store, self.roles, **kwargs)
        await wf.run()
        self.started.append(wf)
        return wf


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    found = Env()
    yield found
    for wf in found.started:
        await wf.stop(grace=1)


def paid(run: Run[Order, Status]) -> Status:
    return Status.PAID


def fulfil(run: Run[Order, Status]) -> Status:
    return Status.FULFILLED


# -- definitions -----------------------------------------------------------------------------------------------------


def test_definitions_are_the_references() -> None:
    """internal/metrics/metrics.go of luno/workflow: name, type, help, labels (and buckets)."""
    expected: dict[Any, tuple[str, str, str, tuple[str, ...]]] = {
        metrics.CONSUMER_LAG: (
            LAG,
            "gauge",
            "lag between now and the current event timestamp in seconds",
            ("workflow_name", "process_name"),
        ),
        metrics.CONSUMER_LAG_ALERT: (
            LAG_ALERT,
            "gauge",
            "Whether or not the consumer lag crosses its alert threshold",
            ("workflow_name", "process_name"),
        ),
        metrics.PROCESS_STATES: (
            STATES,
            "gauge",
            "The current states of all the processes",
            ("workflow_name", "process_name"),
        ),
        metrics.PROCESS_LATENCY: (
            LATENCY,
            "histogram",
            "Event loop latency in seconds",
            ("workflow_name", "process_name"),
        ),
        metrics.PROCESS_ERRORS: (
            ERRORS,
            "counter",
            "Number of errors processing events",
            ("workflow_name", "process_name"),
        ),
        metrics.PROCESS_SKIPPED_EVENTS: (
            SKIPPED,
            "counter",
            "Number of events skipped by consumer",
            ("workflow_name", "process_name", "reason"),
        ),
        metrics.RUN_STATE_CHANGES: (
            CHANGES,
            "counter",
            "The number of workflow run state changes going from state to a new state",
            ("workflow_name", "previous_run_state", "current_run_state"),
        ),
    }
    exposed = {family.name: family for family in REGISTRY.collect()}
    for metric, (name, kind, help_text, labels) in expected.items():
        if isinstance(metric, metrics.Family):
            defined = (metric.name, metric.kind, metric.documentation, metric.labelnames)
        else:
            defined = (metric._name, metric._type, metric._documentation, metric._labelnames)
        assert defined == (name, kind, help_text, labels)
        # What a scrape of the default registry says of it, samples or not.
        assert (exposed[name].type, exposed[name].documentation) == (kind, help_text), name
    assert metrics.PROCESS_LATENCY.buckets == (0.01, 0.1, 1, 5, 10, 60, 300)
    assert (metrics.ROLE_HELD._name, metrics.ROLE_HELD._type, metrics.ROLE_HELD._labelnames) == (
        ROLE_HELD,
        "gauge",
        ("workflow_name", "role"),
    )


def test_a_second_metric_of_an_engine_name_is_refused_by_the_registry() -> None:
    """The engine's per-event families are a collector of their own, described to the registry: another metric
    of one of their names is refused, as it would be if they were prometheus_client's own objects."""
    from prometheus_client import Counter

    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("workflow_run_state_changes", "again", ["workflow_name"])


def test_the_exposition_of_the_per_event_families_is_prometheus_clients() -> None:
    """Counters carry _total and _created, histograms cumulative buckets with le as prometheus_client writes it,
    _count, _sum and _created; the lag gauges their last value."""
    from prometheus_client import generate_latest

    name = unique("exposition")
    m = metrics.WorkflowMetrics(name)
    m.run_state_change(RunState.RUNNING, RunState.COMPLETED)
    m.run_state_change(RunState.RUNNING, RunState.COMPLETED)
    m.latency("p", 0.05)
    m.latency("p", 7)
    m.latencies("p", 500, 2)
    m.lag("p", datetime(2026, 1, 1, 0, 0, 0), datetime(2026, 1, 1, 0, 0, 3), alert_after=2)
    text = generate_latest(REGISTRY).decode()
    changes = {"workflow_name": name, "previous_run_state": "Running", "current_run_state": "Completed"}
    assert sample(f"{CHANGES}_total", **changes) == 2
    assert sample(f"{CHANGES}_created", **changes) is not None
    process = {"workflow_name": name, "process_name": "p"}
    for le, count in (("0.01", 0), ("0.1", 1), ("5.0", 1), ("10.0", 2), ("300.0", 2), ("+Inf", 4)):
        assert sample(f"{LATENCY}_bucket", **process, le=le) == count, le
    assert sample(f"{LATENCY}_count", **process) == 4
    assert sample(f"{LATENCY}_sum", **process) == 1007.05
    assert sample(f"{LATENCY}_created", **process) is not None
    assert sample(LAG, **process) == 3
    assert sample(LAG_ALERT, **process) == 1
    assert f'{LATENCY}_bucket{{le="+Inf",process_name="p",workflow_name="{name}"}} 4.0' in text


# -- when each is recorded ---------------------------------------------------------------------------------------


async def test_lag_is_set_per_event_and_the_alert_follows_the_step_threshold(env: Env) -> None:
    name = unique("lag")
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID).with_options(lag_alert=timedelta(minutes=30))
    wf = await env.start(b)
    process = "created-consumer-1-of-1"

    # Stamped an hour before the workflow's now: past the 30 minute threshold.
    first = await wf.trigger("old")
    await wf.wait_for("old", first, Status.PAID, timeout=5)
    assert sample(LAG, workflow_name=name, process_name=process) == 3600
    assert sample(LAG_ALERT, workflow_name=name, process_name=process) == 1

    # A fresh event clears the alert: the gauges say how old the latest event was.
    env.stream_clock.set(env.clock.now())
    second = await wf.trigger("new")
    await wf.wait_for("new", second, Status.PAID, timeout=5)
    assert sample(LAG, workflow_name=name, process_name=process) == 0
    assert sample(LAG_ALERT, workflow_name=name, process_name=process) == 0


async def test_without_a_lag_alert_threshold_the_alert_is_never_set(env: Env) -> None:
    name = unique("no-alert")
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID).with_options(lag_alert=timedelta(0))
    wf = await env.start(b)
    run_id = await wf.trigger("o")
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    assert sample(LAG, workflow_name=name, process_name="created-consumer-1-of-1") == 3600
    assert sample(LAG_ALERT, workflow_name=name, process_name="created-consumer-1-of-1") is None


async def test_the_outbox_relay_alerts_after_its_own_threshold_of_one_minute(env: Env) -> None:
    name = unique("outbox")
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID)
    env.store = MemoryRecordStore(clock=env.stream_clock)  # outbox events an hour old
    wf = await env.start(b)
    run_id = await wf.trigger("o")
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    assert sample(LAG, workflow_name=name, process_name="outbox-consumer") == 3600
    assert sample(LAG_ALERT, workflow_name=name, process_name="outbox-consumer") == 1
    # Two events go out (CREATED, then PAID's completion, published after the run is stored), each observed once.
    await until(lambda: sample(f"{LATENCY}_count", workflow_name=name, process_name="outbox-consumer") == 2)


async def test_the_paused_run_retry_alerts_after_three_times_its_wait(env: Env) -> None:
    name = unique("retry-alert")
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID)
    env.stream_clock.set(env.clock.now() - timedelta(seconds=100))
    # Waiting 30 s: the reference alerts past 90 s (three times the wait; the wait + 5 min only under a minute).
    wf = await env.start(b, pause_retry=timedelta(seconds=30))
    process = "paused-records-retry-consumer"
    run_id = await wf.trigger("o")
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    # The completion (not a pause) reaches the retry consumer: its lag is taken, then it is filtered out.
    await until(
        lambda: sample(f"{SKIPPED}_total", workflow_name=name, process_name=process, reason="filtered out") == 1
    )
    assert sample(LAG, workflow_name=name, process_name=process) == 100
    assert sample(LAG_ALERT, workflow_name=name, process_name=process) == 1


async def test_process_states_and_role_held_follow_the_role(env: Env) -> None:
    name = unique("states")
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID)
    b.add_step(Status.PAID, fulfil, Status.FULFILLED)
    paid_role = f"{name}-2-consumer-1-of-1"
    async with env.roles.hold(paid_role):  # someone else holds the PAID step's role
        wf = await env.start(b)
        await until(lambda: sample(STATES, workflow_name=name, process_name="created-consumer-1-of-1") == RUNNING)
        assert sample(ROLE_HELD, workflow_name=name, role=f"{name}-1-consumer-1-of-1") == 1
        assert sample(STATES, workflow_name=name, process_name="paid-consumer-1-of-1") == IDLE
        assert sample(ROLE_HELD, workflow_name=name, role=paid_role) == 0  # waiting: a standby shows 0
        assert wf.states()["paid-consumer-1-of-1"] == "Idle"
    await until(lambda: sample(ROLE_HELD, workflow_name=name, role=paid_role) == 1)
    assert sample(STATES, workflow_name=name, process_name="paid-consumer-1-of-1") == RUNNING

    await wf.stop(grace=1)
    for process in ("created-consumer-1-of-1", "paid-consumer-1-of-1", "outbox-consumer", "delete-consumer"):
        assert sample(STATES, workflow_name=name, process_name=process) == SHUTDOWN, process
    for role in wf.roles():
        assert sample(ROLE_HELD, workflow_name=name, role=role) == 0, role


async def test_latency_is_observed_once_per_event_handled(env: Env) -> None:
    name = unique("latency")
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID)
    wf = await env.start(b)
    for i in range(3):
        run_id = await wf.trigger(f"o{i}")
        await wf.wait_for(f"o{i}", run_id, Status.PAID, timeout=5)
    labels = {"workflow_name": name, "process_name": "created-consumer-1-of-1"}
    assert sample(f"{LATENCY}_count", **labels) == 3
    assert sample(f"{LATENCY}_bucket", **labels, le="300.0") == 3
    assert sample(f"{LATENCY}_bucket", **labels, le="+Inf") == 3


async def test_each_failed_attempt_counts_one_error(env: Env) -> None:
    name = unique("errors")
    failures = 2

    def flaky(run: Run[Order, Status]) -> Status:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("payment provider down")
        return Status.PAID

    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, flaky, Status.PAID).with_options(err_backoff=timedelta(seconds=5))
    wf = await env.start(b)
    run_id = await wf.trigger("o")
    labels = {"workflow_name": name, "process_name": "created-consumer-1-of-1"}

    def errors_counted(count: int) -> Callable[[], bool]:
        return lambda: sample(f"{ERRORS}_total", **labels) == count

    for count in (1, 2):
        await until(errors_counted(count))
        await until(lambda: env.clock.sleeping_until(env.clock.now() + timedelta(seconds=5)) > 0)
        env.clock.advance(5)
    await wf.wait_for("o", run_id, Status.PAID, timeout=5)
    assert sample(f"{ERRORS}_total", **labels) == 2
    assert sample(f"{LATENCY}_count", **labels) == 1


async def test_skipped_events_are_counted_by_the_references_reasons(env: Env) -> None:
    name = unique("skipped")

    def maybe_skip(run: Run[Order, Status]) -> Status | Skip:
        return run.skip() if run.foreign_id.startswith("skip") else Status.PAID

    def expire(run: Run[Order, Status], now: datetime) -> Skip:
        return run.skip()

    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, maybe_skip, Status.PAID)
    b.add_timeout(Status.PAID, duration_timer(timedelta(minutes=1)), expire, Status.EXPIRED)
    b.add_step(Status.EXPIRED, fulfil, Status.FULFILLED)
    b.on_pause(lambda run: None)
    created = {"workflow_name": name, "process_name": "created-consumer-1-of-1"}

    def skipped(labels: dict[str, str], reason: str) -> float:
        return sample(f"{SKIPPED}_total", **labels, reason=reason) or 0

    # While someone else holds the CREATED step's role, one run is made that its step skips, and one that is
    # paused (a new version) before its CREATED event is handled: that event is older than its run.
    async with env.roles.hold(f"{name}-1-consumer-1-of-1"):
        wf = await env.start(b)
        await wf.trigger("skip-1")
        later = await wf.trigger("later")
        await wf.pause(later, "hold on")
    await until(lambda: skipped(created, "next value specified skip") == 1)
    await until(lambda: skipped(created, "event record version lower than latest record version") == 1)

    # The pause hook's consumer takes the pause and filters out the cancellation.
    hook = {"workflow_name": name, "process_name": "paused-run-state-change-hook-consumer"}
    await wf.cancel(later, "no")
    await until(lambda: skipped(hook, "filtered out") == 1)

    # A timeout whose function skips.
    timeout = {"workflow_name": name, "process_name": "paid-timeout-consumer"}
    timed = await wf.trigger("timed")
    await wf.wait_for("timed", timed, Status.PAID, timeout=5)
    async with asyncio.timeout(10):
        while skipped(timeout, "next value specified skip") != 1:
            env.clock.advance(timedelta(seconds=10))
            await asyncio.sleep(0.01)
    assert (await wf.get_run(timed)).status is Status.PAID


async def test_run_state_changes_count_previous_and_current_states(env: Env) -> None:
    name = unique("changes")
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID, Status.PAYMENT_FAILED)
    b.add_step(Status.PAID, fulfil, Status.FULFILLED)

    def changes(previous: str, current: str) -> float:
        labels = {"previous_run_state": previous, "current_run_state": current}
        return sample(f"{CHANGES}_total", workflow_name=name, **labels) or 0

    # The run controls count from the state as stored (nothing has run the CREATED step yet).
    async with env.roles.hold(f"{name}-1-consumer-1-of-1"):
        wf = await env.start(b)
        held = await wf.trigger("held")
        assert changes("Unknown", "Initiated") == 1
        await wf.pause(held, "wait")
        await wf.cancel(held, "no")
    assert changes("Initiated", "Paused") == 1
    assert changes("Paused", "Cancelled") == 1
    await wf.delete_data(held, "gdpr")
    assert changes("Cancelled", "Requested Data Deleted") == 1
    await until(lambda: changes("Requested Data Deleted", "Data Deleted") == 1)
    assert (await wf.get_run(held)).run_state is RunState.DATA_DELETED

    done = await wf.trigger("done")
    await wf.wait_for("done", done, Status.FULFILLED, timeout=5)
    assert changes("Unknown", "Initiated") == 2
    # As the reference: a step finds an initiated run "Running" (it marks it so as it starts), so the first step
    # counts Running -> Running, and the last Running -> Completed.
    assert changes("Running", "Running") == 1
    assert changes("Running", "Completed") == 1


async def test_a_step_reached_by_handoff_observes_its_latency_too(kafka_bootstrap: str) -> None:
    """On Kafka a step running in the same process takes the run at once (the handoff) and its event is then
    acknowledged as done already: the step's latency is still observed once per run, and the event's lag too."""
    from conveyor.adapters.kafka import KafkaStreamer

    name = unique("handoff")
    b = Builder(name, Order, Status)
    b.add_step(Status.CREATED, paid, Status.PAID)
    b.add_step(Status.PAID, fulfil, Status.FULFILLED)
    wf = b.build(KafkaStreamer(kafka_bootstrap, partitions=2), MemoryRecordStore(), MemoryRoleScheduler())
    runs = 5
    async with wf:
        for i in range(runs):
            run_id = await wf.trigger(f"o{i}")
            await wf.wait_for(f"o{i}", run_id, Status.FULFILLED, timeout=30)
        paid_step = {"workflow_name": name, "process_name": "paid-consumer-1-of-1"}
        # Observed once the step's outcome is committed, which a waiter on the record may see first.
        await until(lambda: sample(f"{LATENCY}_count", **paid_step) == runs, timeout=10)
        assert sample(f"{LATENCY}_count", **paid_step) == runs
        await until(lambda: sample(LAG, **paid_step) is not None, timeout=30)


def test_a_batch_of_latencies_counts_as_that_many_observations() -> None:
    name = unique("batch-latency")
    one_by_one, batched = metrics.WorkflowMetrics(name), metrics.WorkflowMetrics(name)
    for _ in range(3):
        one_by_one.latency("by-one", 0.05)
    batched.latencies("batched", 0.05, 3)
    batched.latencies("batched", 0.05, 0)
    for suffix, le in (("_count", None), ("_sum", None), ("_bucket", "0.1"), ("_bucket", "0.01"), ("_bucket", "+Inf")):
        extra = {"le": le} if le else {}
        by_one = sample(f"workflow_process_latency_seconds{suffix}", workflow_name=name, process_name="by-one", **extra)
        together = sample(
            f"workflow_process_latency_seconds{suffix}", workflow_name=name, process_name="batched", **extra
        )
        assert together == by_one, (suffix, le)
    assert sample("workflow_process_latency_seconds_count", workflow_name=name, process_name="batched") == 3
