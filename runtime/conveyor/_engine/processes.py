"""The processes of a workflow, one function each: step consumers, the outbox relay, timeouts, hooks, data
deletion, the paused-run retry, connectors and schedules. Each runs only while its role is held."""

from __future__ import annotations

import contextlib
import enum
import functools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from conveyor._core.ports import EventReceiver, EventSender, OutboxBatchDeleter, Shard, ShardOwningReceiver
from conveyor._core.records import Event, OutgoingEvent, Record, delete_topic, run_state_change_topic, topic
from conveyor._core.runstate import RunState
from conveyor._core.sharding import shard_of
from conveyor._engine.handoff import Target
from conveyor._engine.options import (
    DEFAULT_MAX_IN_FLIGHT,
    OUTBOX_BATCH_LIMIT,
    OUTBOX_LAG_ALERT,
    OUTBOX_POLLING_FREQUENCY,
)
from conveyor._engine.pipeline import Pipeline
from conveyor._engine.runtime import Runtime
from conveyor._engine.spec import ConnectorSpec, StepSpec, TimeoutSpec, is_async
from conveyor._engine.supervise import first_of
from conveyor.errors import RecordNotFound, StaleRead, TimeoutNotFound, WorkflowInProgress

if TYPE_CHECKING:
    from conveyor._engine.workflow import Workflow

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

# A handler returns False when it found the event's work done already (see `Runtime.retrying`).
Handler = Callable[[Event], Awaitable[bool | None]]


async def consume(
    rt: Runtime[Any, Any],
    receiver: EventReceiver,
    process: str,
    handle: Handler,
    *,
    err_backoff: float,
    consume_lag: float = 0.0,
    lag_alert: float = 0.0,
    accept: Callable[[Event], bool] | None = None,
    window: int = DEFAULT_MAX_IN_FLIGHT,
    done_already: Callable[[Event], bool] | None = None,
) -> None:
    """Receive, handle and acknowledge events, up to `window` of different foreign ids at once (see
    `pipeline`); a failed event is retried after a back-off and not acknowledged until it succeeds, so nothing
    is lost and each foreign id keeps its order. An event that `done_already` calls done as it arrives is
    acknowledged in its turn without being handled."""

    async def work(event: Event) -> None:
        if accept is not None and not accept(event):
            rt.metrics.skipped(process, "filtered out")
        else:
            await rt.retrying(process, err_backoff, handle, event)

    def observe(event: Event) -> None:
        rt.metrics.lag(process, event.created_at, rt.clock.now(), lag_alert)

    async def delay(event: Event) -> None:
        await _wait_until_age(rt, event.created_at, consume_lag)

    pipeline = Pipeline(receiver, work, window, rt.drain.working, done_already)
    try:
        await pipeline.run(observe, delay if consume_lag > 0 else None)
    finally:
        try:
            await pipeline.close()
        finally:
            await receiver.close()


async def _wait_until_age(rt: Runtime[Any, Any], created_at: datetime, age: float) -> None:
    while True:
        remaining = age - (rt.clock.now() - created_at).total_seconds()
        if remaining <= 0:
            return
        await rt.clock.sleep(remaining)


async def _lookup(rt: Runtime[Any, Any], event: Event, process: str) -> Record | None:
    """The record an event is about, or None (counted skipped) if the store has no such run."""
    try:
        return await rt.store.lookup(event.run_id)
    except RecordNotFound:
        rt.metrics.skipped(process, "record not found")
        return None


async def _current(rt: Runtime[Any, Any], event: Event, process: str, expected_status: int | None) -> Record | None:
    """The record an event is about, if the event is still current; None (counted skipped) when it is not."""
    run_id = event.run_id
    if not run_id:
        rt.metrics.skipped(process, "event without run id")
        return None
    try:
        record = await rt.store.lookup(run_id)
    except RecordNotFound:
        rt.metrics.skipped(process, "record not found")
        return None
    version = event.record_version
    if version is not None:
        if record.meta.version > version:
            rt.metrics.skipped(process, "event record version lower than latest record version")
            rt.decisions.log("skipped: event already superseded", record, process=process, event_version=version)
            return None
        if record.meta.version < version:
            # The store answered from behind the event (replication lag): retry rather than act on old data.
            raise StaleRead(run_id, version, record.meta.version)
    if expected_status is not None and record.status != expected_status:
        rt.metrics.skipped(process, "record status not in expected state")
        return None
    if record.run_state.stopped():
        rt.metrics.skipped(process, "record stopped")
        rt.decisions.log("skipped: run is stopped", record, process=process)
        return None
    return record


# -- steps ---------------------------------------------------------------------------------------------------------


async def step_consumer(rt: Runtime[T, S], step: StepSpec[T, S], shard: Shard, role: str, process: str) -> None:
    opts = rt.options(step.options)
    receiver = await rt.streamer.receiver(
        topic(rt.name, int(step.status)), role, shard=shard, poll_frequency=opts.polling_frequency
    )

    what = f"step from {step.status.name}"  # names the step in an error about its result
    # Asked once: an async step is awaited here, one coroutine less per transition than through rt.call.
    step_fn = cast(Callable[[Any], Awaitable[object]], step.fn) if is_async(step.fn) else None

    async def run_step(before: Record, *, from_event: bool) -> Record | None:
        """Run the step on `before`; the record it stored, if it stored one. From an event, that record is offered
        to its next step here; a handoff goes on with it itself (see `handoff`)."""
        started = time.perf_counter()
        try:
            run = rt.to_run(before, processing=True)
            if rt.decisions.enabled:  # the per-step hot path: no kwargs built when not debugging
                rt.decisions.log("running step", before, process=process)
            result = await step_fn(run) if step_fn is not None else await rt.call(step.fn, run)
            after = rt.decide(before, run, result, step.destinations, what)
        except Exception as exc:
            # Errors count (and pause) on the event's path only: a failed handoff leaves the run to its event.
            if from_event and await rt.auto_pause(before, exc, process, opts.pause_after_err_count):
                return None
            raise
        if after is None:
            rt.metrics.skipped(process, "next value specified skip")
            rt.decisions.log("skipped: the step asked to skip", before, process=process)
        elif not await rt.commit(before, after, process):
            after = None
        if from_event:
            if after is not None:
                rt.handoff.offer(after)
        else:
            # A handoff: its event is then acknowledged as done already, so the step's latency is observed here.
            rt.metrics.latency(process, time.perf_counter() - started)
        return after

    async def handle_event(event: Event) -> None:
        if tracing is not None:
            with tracing.event_attempt("step", event, rt.name, process, shard):
                before = await _current(rt, event, process, int(step.status))
                if before is not None:
                    await run_step(before, from_event=True)
            return
        before = await _current(rt, event, process, int(step.status))
        if before is not None:
            await run_step(before, from_event=True)

    tracing = rt.tracing

    # Asked once per start of the consumer: a receiver's capabilities do not change while it lives.
    if not isinstance(receiver, ShardOwningReceiver) or opts.consume_lag > 0:
        # No handoff: the receiver cannot say which runs are its shard's, or the step must wait for its events.
        await consume(
            rt,
            receiver,
            process,
            handle_event,
            err_backoff=opts.err_backoff,
            consume_lag=opts.consume_lag,
            lag_alert=opts.lag_alert,
            window=opts.max_in_flight,
        )
        return

    handoff: Callable[[Record], Awaitable[Record | None]]
    if tracing is not None:
        traced = tracing

        async def handoff(before: Record) -> Record | None:
            # A child of the span that stored the record, as its event's consumer would be.
            with traced.record_attempt("step", before, process, shard):
                return await run_step(before, from_event=False)

    else:
        # A partial, not a coroutine around run_step: one frame less for every handoff.
        handoff = functools.partial(run_step, from_event=False)
    target = Target(
        receiver.owns, handoff, rt.drain.working, lambda: not rt.drain.stopping.is_set(), opts.max_in_flight
    )

    async def handle(event: Event) -> bool:
        # Under the run's claim (waiting for a handoff of it to end), unless a handoff handled this version
        # meanwhile: then False, nothing done (the handoff observed the step's latency). Written out here rather
        # than around handle_event: this runs for every event the handoffs did not take.
        run_id, version = event.run_id, event.record_version
        if not target.take(run_id):
            await target.claim(run_id)
        try:
            if target.handled(run_id, version):
                return False
            if tracing is not None:
                await handle_event(event)
            else:
                before = await _current(rt, event, process, int(step.status))
                if before is not None:
                    await run_step(before, from_event=True)
            target.note_handled(run_id, version)
            return True
        finally:
            target.release(run_id)

    rt.handoff.add(int(step.status), target)
    try:
        await consume(
            rt,
            receiver,
            process,
            handle,
            err_backoff=opts.err_backoff,
            lag_alert=opts.lag_alert,
            window=opts.max_in_flight,
            # Most events, once handoffs run: acknowledged in their turn, with no task, claim or lookup.
            done_already=target.done_already,
        )
    finally:
        rt.handoff.remove(int(step.status), target)
        await target.close()


# -- outbox ------------------------------------------------------------------------------------------------------


async def outbox_relay(rt: Runtime[Any, Any], process: str) -> None:
    """Publish the outbox in batches, woken by the store's signal, polling only as the safety net.

    A published batch is deleted together with the listing of the next one when the store can do both in one
    round trip (`OutboxBatchDeleter`); it is deleted before anything else happens either way, so a
    batch is published again only if the relay stops between its publishing and that delete, as before."""
    signal = rt.store.outbox_signal(rt.name)
    senders: dict[str, EventSender] = {}
    poll = OUTBOX_POLLING_FREQUENCY.total_seconds()
    # Asked once per start of the relay, not per batch.
    store = rt.store
    delete_and_list = store.delete_and_list_outbox_events if isinstance(store, OutboxBatchDeleter) else None
    published: list[str] = []  # ids of the batch published last, not deleted yet
    tracing = rt.tracing
    started = 0.0
    try:
        while True:
            if not published:
                events = await rt.store.list_outbox_events(rt.name, OUTBOX_BATCH_LIMIT)
            elif delete_and_list is not None:
                events = await delete_and_list(published, rt.name, OUTBOX_BATCH_LIMIT)
            else:
                await rt.store.delete_outbox_events(published)
                events = await rt.store.list_outbox_events(rt.name, OUTBOX_BATCH_LIMIT)
            if published:
                # The reference observes each event's send and delete; here they happen together, batch by batch.
                rt.metrics.latencies(process, time.perf_counter() - started, len(published))
                rt.decisions.log("published outbox events", None, count=len(published))
                published = []
            if not events:
                await first_of(signal.wait(), rt.clock.sleep(poll))
                continue
            started = time.perf_counter()
            # The reference sets the lag (and its alert) per event as it publishes it, so the last event's stays:
            # one batch leaves the same.
            rt.metrics.lag(process, events[-1].created_at, rt.clock.now(), OUTBOX_LAG_ALERT.total_seconds())
            by_topic: dict[str, list[OutgoingEvent]] = {}
            for item in events:
                outgoing = item.decode()
                by_topic.setdefault(outgoing.headers["topic"], []).append(outgoing)
            for name, batch in by_topic.items():
                sender = senders.get(name)
                if sender is None:
                    sender = senders[name] = await rt.streamer.sender(name)
                if tracing is not None:
                    with tracing.publish(rt.name, name, batch):
                        await sender.send(batch)
                else:
                    await sender.send(batch)
            published = [item.id for item in events]
    finally:
        for sender in senders.values():
            await sender.close()
        await signal.close()


# -- timeouts ----------------------------------------------------------------------------------------------------


async def timeout_inserter(
    rt: Runtime[T, S], status: S, timeouts: list[TimeoutSpec[T, S]], role: str, process: str
) -> None:
    """Schedule the status's timeouts for every run that reaches it."""
    opts = rt.options(rt.spec.timeout_options.get(int(status)) or rt.defaults)
    store = rt.timeout_store
    assert store is not None
    receiver = await rt.streamer.receiver(topic(rt.name, int(status)), role, poll_frequency=opts.polling_frequency)

    async def handle(event: Event) -> None:
        before = await _current(rt, event, process, int(status))
        if before is None:
            return
        run = rt.to_run(before, processing=True)
        for index, spec in enumerate(timeouts):
            expire_at = await rt.call(spec.timer, run, rt.clock.now())
            if expire_at is None:
                continue
            if not isinstance(expire_at, datetime) or expire_at.tzinfo is None:
                raise TypeError(f"timer of {status.name} returned {expire_at!r}; expected an aware datetime or None")
            await store.create(
                rt.name,
                before.foreign_id,
                before.run_id,
                int(status),
                expire_at,
                timer=index,
                record_version=before.meta.version,
            )
            rt.decisions.log("scheduled timeout", before, process=process, expire_at=expire_at.isoformat())

    await consume(rt, receiver, process, handle, err_backoff=opts.err_backoff, lag_alert=opts.lag_alert)


async def timeout_poller(rt: Runtime[T, S], status: S, timeouts: list[TimeoutSpec[T, S]], process: str) -> None:
    """Fire expired timeouts of the status, each at most once."""
    opts = rt.options(rt.spec.timeout_options.get(int(status)) or rt.defaults)
    store = rt.timeout_store
    assert store is not None
    while True:
        now = rt.clock.now()
        for due in await store.list_valid(rt.name, int(status), now):
            async with rt.drain.working():
                await rt.retrying(process, opts.err_backoff, lambda d: _fire(rt, d, status, timeouts, process), due)
        await rt.drain.sleep(rt.clock.sleep, opts.polling_frequency)


async def _fire(rt: Runtime[T, S], due: Any, status: S, timeouts: list[TimeoutSpec[T, S]], process: str) -> None:
    try:
        before = await rt.store.lookup(due.run_id)
    except RecordNotFound:
        await _forget_timeout(rt, due.id)
        return
    if before.status != int(status) or before.run_state.finished() or not 0 <= due.timer < len(timeouts):
        # The run moved on: the timeout no longer applies.
        await _forget_timeout(rt, due.id)
        rt.decisions.log("cancelled timeout: run moved on", before, process=process)
        return
    if before.run_state.stopped():
        return  # paused: keep it for when the run resumes
    if rt.tracing is not None:
        # A timeout was scheduled from the event of the version it fires on, whose context the run row does not
        # keep: its span starts a trace of its own (no parent), linked to the run by its attributes.
        with rt.tracing.record_attempt("timeout", before, process):
            await _fire_timeout(rt, due, before, status, timeouts, process)
        return
    await _fire_timeout(rt, due, before, status, timeouts, process)


async def _fire_timeout(
    rt: Runtime[T, S], due: Any, before: Record, status: S, timeouts: list[TimeoutSpec[T, S]], process: str
) -> None:
    store = rt.timeout_store
    assert store is not None
    opts = rt.options(rt.spec.timeout_options.get(int(status)) or rt.defaults)
    spec = timeouts[due.timer]
    try:
        run = rt.to_run(before, processing=True)
        result = await rt.call(spec.fn, run, rt.clock.now())
        after = rt.decide(before, run, result, spec.destinations, f"timeout of {status.name}")
    except Exception as exc:
        if await rt.auto_pause(before, exc, process, opts.pause_after_err_count):
            return
        raise
    if after is None:
        rt.metrics.skipped(process, "next value specified skip")
    elif not await rt.commit(before, after, process):
        return  # the run changed meanwhile: look again at the next poll
    await store.complete(due.id)
    rt.decisions.log("fired timeout", before, process=process, skipped=after is None)


async def _forget_timeout(rt: Runtime[Any, Any], timeout_id: int) -> None:
    assert rt.timeout_store is not None
    with contextlib.suppress(TimeoutNotFound):
        await rt.timeout_store.cancel(timeout_id)


# -- run-state changes: hooks, deletion, paused-run retry ---------------------------------------------------------


async def hook_consumer(rt: Runtime[T, S], state: RunState, hook: Any, role: str, process: str) -> None:
    opts = rt.options(rt.defaults)
    receiver = await rt.streamer.receiver(run_state_change_topic(rt.name), role, poll_frequency=opts.polling_frequency)

    async def handle(event: Event) -> None:
        record = await _lookup(rt, event, process)
        if record is None:
            return
        try:
            run = rt.to_run(record)
        except Exception:
            rt.metrics.skipped(process, "unable to unmarshal object")
            return
        rt.decisions.log(f"running on_{state.name.lower()} hook", record, process=process)
        await rt.call(hook, run)

    await consume(
        rt,
        receiver,
        process,
        handle,
        err_backoff=opts.err_backoff,
        lag_alert=opts.lag_alert,
        accept=lambda e: e.run_state is state,
    )


async def delete_consumer(rt: Runtime[T, S], role: str, process: str) -> None:
    opts = rt.options(rt.defaults)
    receiver = await rt.streamer.receiver(delete_topic(rt.name), role, poll_frequency=opts.polling_frequency)

    async def handle(event: Event) -> None:
        before = await _lookup(rt, event, process)
        if before is None:
            return
        if before.run_state is not RunState.REQUESTED_DATA_DELETED:
            rt.metrics.skipped(process, "record not awaiting deletion")
            return
        replacement: bytes | None = None
        if rt.custom_delete is not None:
            run = rt.to_run(before)
            value = await rt.call(rt.custom_delete, run)
            if value is not None:
                replacement = rt.spec.codec.encode(rt.spec.codec.coerce(value, "custom_delete result"))
        after = rt.next_record(before, status=before.status, run_state=RunState.DATA_DELETED, object=replacement)
        await rt.commit(before, after, process)

    await consume(rt, receiver, process, handle, err_backoff=opts.err_backoff, lag_alert=opts.lag_alert)


async def paused_retry_consumer(rt: Runtime[Any, Any], role: str, process: str) -> None:
    """Resume runs that have been paused for `pause_retry`, as the reference does by default."""
    assert rt.pause_retry is not None
    resume_after = rt.pause_retry.total_seconds()
    opts = rt.options(rt.defaults)
    receiver = await rt.streamer.receiver(run_state_change_topic(rt.name), role, poll_frequency=opts.polling_frequency)

    async def handle(event: Event) -> None:
        before = await _lookup(rt, event, process)
        if before is None:
            return
        if before.run_state is not RunState.PAUSED or before.meta.version != event.record_version:
            return  # resumed or paused again since: a later event covers it
        # Paused for `resume_after` on the workflow's clock (record times are the engine's, not the streamer's).
        while (remaining := resume_after - (rt.clock.now() - before.updated_at).total_seconds()) > 0:
            await rt.drain.sleep(rt.clock.sleep, remaining)
        after = rt.next_record(
            before, status=before.status, run_state=RunState.RUNNING, object=before.object, reason=""
        )
        if await rt.commit(before, after, process):
            rt.decisions.log("resumed paused run automatically", before, process=process)

    await consume(
        rt,
        receiver,
        process,
        handle,
        err_backoff=opts.err_backoff,
        # The reference's threshold: three times the wait, or the wait plus five minutes when that is under one.
        lag_alert=resume_after * 3 if resume_after * 3 >= 60 else resume_after + 300,
        accept=lambda e: e.run_state is RunState.PAUSED,
    )


# -- connectors and schedules -------------------------------------------------------------------------------------


async def connector_consumer(
    rt: Runtime[T, S], workflow: Workflow[T, S], spec: ConnectorSpec[T, S], shard: Shard, role: str
) -> None:
    opts = rt.options(spec.options)
    consumer = await spec.connector.make(role)
    try:
        while True:
            event = await consumer.recv()
            if event.created_at is not None:
                if opts.consume_lag > 0:
                    await _wait_until_age(rt, event.created_at, opts.consume_lag)
                rt.metrics.lag(role, event.created_at, rt.clock.now(), opts.lag_alert)
            async with rt.drain.working():
                if shard_of(event.foreign_id, shard.count) == shard.index:
                    await rt.retrying(role, opts.err_backoff, lambda e: rt.call(spec.fn, workflow, e), event)
                else:
                    rt.metrics.skipped(role, "filtered out")
                await consumer.ack(event)
    finally:
        await consumer.close()


async def scheduler(
    rt: Runtime[T, S],
    workflow: Workflow[T, S],
    foreign_id: str,
    next_after: Callable[[datetime], datetime],
    initial_value: T | None,
    should_trigger: Callable[[], Any] | None,
) -> None:
    last_run: datetime | None = None
    while True:
        if last_run is None:
            try:
                last_run = (await rt.store.latest(rt.name, foreign_id)).created_at
            except RecordNotFound:
                last_run = rt.clock.now()
        due = next_after(last_run)
        while (remaining := (due - rt.clock.now()).total_seconds()) > 0:
            await rt.drain.sleep(rt.clock.sleep, remaining)
        trigger = True if should_trigger is None else bool(await rt.call(should_trigger))
        last_run = rt.clock.now()
        if not trigger:
            rt.decisions.log("schedule slot filtered out", None, foreign_id=foreign_id)
            continue
        try:
            await workflow.trigger(foreign_id, initial_value=initial_value)
        except WorkflowInProgress:
            rt.decisions.log("schedule slot skipped: a run is in progress", None, foreign_id=foreign_id)
