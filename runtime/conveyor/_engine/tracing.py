"""OpenTelemetry traces of runs: every place in the engine that touches opentelemetry is here.

opentelemetry is optional (the `otel` extra). `tracer()` imports it on first use and answers None when it is not
installed, or when the application set no tracer provider; the engine then holds None and pays one `is None` check
per event, nothing more (and without the package, nothing of opentelemetry is ever imported). A workflow asks when
it starts running, a `Client` at each trigger, control and callback.

Spans: one per trigger, per step, callback or timeout attempt, per outbox publish (one per topic of a batch) and per
run control. An attempt's outcome is an attribute: stored (with the status it moved to), skipped (with the reason
the engine counted in `process_skipped_events`), or error. The W3C trace context of the span that wrote a record
version is carried on the record (`Meta.trace_context`, `Meta.trace_state`) into its event's headers, because the
store computes the outbox payload from the record, sometimes in another task; the consumer of the event, or the
in-process handoff of the record, starts its span as a child of that context. So one run is one trace, across
processes."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from conveyor._core.records import HEADER_TRACEPARENT, HEADER_TRACESTATE, Event, OutgoingEvent, Record

if TYPE_CHECKING:
    from conveyor._core.ports import Shard

INSTRUMENTATION: Final = "conveyor"

# Attribute names.
WORKFLOW: Final = "conveyor.workflow"
FOREIGN_ID: Final = "conveyor.foreign_id"
RUN_ID: Final = "conveyor.run_id"
FROM_STATUS: Final = "conveyor.from_status"
TO_STATUS: Final = "conveyor.to_status"
RUN_STATE: Final = "conveyor.run_state"
SHARD: Final = "conveyor.shard"
PROCESS: Final = "conveyor.process"
OUTCOME: Final = "conveyor.outcome"
SKIP_REASON: Final = "conveyor.skip_reason"
TOPIC: Final = "conveyor.topic"
EVENT_COUNT: Final = "conveyor.event_count"

STORED: Final = "stored"
SKIPPED: Final = "skipped"
ERROR: Final = "error"


class Attempt:
    """What the engine learns during one traced attempt, set on its span when it ends."""

    __slots__ = ("kind", "outcome", "reason", "span", "to_status")

    def __init__(self, span: Any, kind: str) -> None:
        self.span = span
        self.kind = kind
        self.outcome = SKIPPED
        self.reason = ""
        self.to_status = 0


# The attempt running in this task, if traced: `note_skipped` and `note_stored` report to it.
_ATTEMPT: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("conveyor_attempt", default=None)


def note_skipped(reason: str) -> None:
    """The engine skipped (counted `reason`); called where skips are counted, so every reason reaches the span."""
    attempt = _ATTEMPT.get()
    if attempt is not None and attempt.outcome != STORED:
        attempt.outcome = SKIPPED
        attempt.reason = reason


def note_stored(record: Record) -> None:
    attempt = _ATTEMPT.get()
    if attempt is not None:
        attempt.outcome = STORED
        attempt.reason = ""
        attempt.to_status = record.status


class Tracing:
    """Spans of conveyor's work on one tracer, and the trace context carried on records and events."""

    def __init__(self, trace: Any, propagator: Any, context_api: Any) -> None:
        self._trace = trace
        self._tracer = trace.get_tracer(INSTRUMENTATION)
        self._propagator = propagator
        self._context = context_api
        self._consumer = trace.SpanKind.CONSUMER
        self._producer = trace.SpanKind.PRODUCER
        self._internal = trace.SpanKind.INTERNAL
        self._error = trace.StatusCode.ERROR
        self._unset = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        self._configured = False

    def configured(self) -> bool:
        """True once the application set a tracer provider (not the API's default, nor its no-op). The API lets a
        provider be set once only, so a yes is kept; a no is asked again each time (the API's own check reads the
        environment, about 1.5 us)."""
        if not self._configured:
            self._configured = not isinstance(self._trace.get_tracer_provider(), self._unset)
        return self._configured

    # -- trace context on records ------------------------------------------------------------------------------

    def stamp(self, record: Record) -> Record:
        """`record` carrying the current span's context, for its event (unchanged when no span is current)."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        traceparent = carrier.get(HEADER_TRACEPARENT, "")
        if not traceparent:
            return record
        record.meta = dataclasses.replace(
            record.meta, trace_context=traceparent, trace_state=carrier.get(HEADER_TRACESTATE, "")
        )
        return record

    def _parent(self, carrier: Mapping[str, str] | None) -> Any:
        if not carrier or HEADER_TRACEPARENT not in carrier:
            return None  # the current context: a run started inside the caller's span joins its trace
        return self._propagator.extract(carrier)

    @staticmethod
    def record_carrier(record: Record) -> dict[str, str] | None:
        meta = record.meta
        if not meta.trace_context:
            return None
        carrier = {HEADER_TRACEPARENT: meta.trace_context}
        if meta.trace_state:
            carrier[HEADER_TRACESTATE] = meta.trace_state
        return carrier

    # -- spans -------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def attempt(
        self,
        kind: str,
        workflow: str,
        foreign_id: str,
        run_id: str,
        from_status: int,
        process: str,
        *,
        parent: Mapping[str, str] | None,
        shard: Shard | None = None,
        consumer: bool = True,
    ) -> Iterator[Attempt]:
        """A span for one attempt of `kind` (step, callback, timeout, trigger, pause, ...) on a run, a child of
        the context in `parent` (an event's headers or a record's carrier). Its outcome is whatever the engine
        noted inside (`note_stored`, `note_skipped`), or error when the attempt raises."""
        attributes: dict[str, Any] = {
            WORKFLOW: workflow,
            FOREIGN_ID: foreign_id,
            RUN_ID: run_id,
            FROM_STATUS: from_status,
            PROCESS: process,
        }
        if shard is not None:
            attributes[SHARD] = f"{shard.index}-of-{shard.count}"
        with self._tracer.start_as_current_span(
            f"conveyor {kind} {workflow}",
            context=self._parent(parent),
            kind=self._consumer if consumer else self._producer,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            attempt = Attempt(span, kind)
            token = _ATTEMPT.set(attempt)
            try:
                yield attempt
            except BaseException as exc:
                attempt.outcome = ERROR
                attempt.reason = f"{type(exc).__name__}: {exc}"
                span.record_exception(exc)
                span.set_status(self._error, attempt.reason)
                raise
            finally:
                _ATTEMPT.reset(token)
                span.set_attribute(OUTCOME, attempt.outcome)
                if attempt.outcome == SKIPPED and attempt.reason:
                    span.set_attribute(SKIP_REASON, attempt.reason)
                if attempt.outcome == STORED:
                    span.set_attribute(TO_STATUS, attempt.to_status)

    def event_attempt(
        self, kind: str, event: Event, workflow: str, process: str, shard: Shard | None = None
    ) -> contextlib.AbstractContextManager[Attempt]:
        return self.attempt(
            kind,
            workflow,
            event.foreign_id,
            event.run_id,
            event.type,
            process,
            parent=event.headers,
            shard=shard,
        )

    def record_attempt(
        self, kind: str, record: Record, process: str, shard: Shard | None = None
    ) -> contextlib.AbstractContextManager[Attempt]:
        return self.attempt(
            kind,
            record.workflow_name,
            record.foreign_id,
            record.run_id,
            record.status,
            process,
            parent=self.record_carrier(record),
            shard=shard,
        )

    @contextlib.contextmanager
    def publish(self, workflow: str, topic: str, events: Sequence[OutgoingEvent]) -> Iterator[None]:
        """A span for publishing one topic's events of an outbox batch, linked to the spans that wrote them (a
        batch holds many runs' events, so it is no run's child; each event keeps its writer's context)."""
        links = []
        for event in events:
            if HEADER_TRACEPARENT in event.headers:
                span_context = self._trace.get_current_span(self._propagator.extract(event.headers)).get_span_context()
                if span_context.is_valid:
                    links.append(self._trace.Link(span_context))
        with self._tracer.start_as_current_span(
            f"conveyor publish {topic}",
            context=self._context.Context(),  # a root: the relay's loop is no one's work
            kind=self._producer,
            links=links,
            attributes={WORKFLOW: workflow, TOPIC: topic, EVENT_COUNT: len(events)},
        ):
            yield


def traced(
    kind: str, process: str, run_id: str, record: Record | None = None
) -> contextlib.AbstractContextManager[Any]:
    """A span for a write made on request (a trigger, a run control, a callback: `Client`'s), or nothing when
    tracing is off. It is a child of the caller's current span, if any: a run triggered while handling a request
    joins the request's trace. The records written inside must be `stamp`ed, and `describe`d when `record` (the
    run as known before the write) was not given."""
    t = tracer()
    if t is None:
        return contextlib.nullcontext()
    if record is None:
        return t.attempt(kind, "", "", run_id, 0, process, parent=None, consumer=False)
    return t.attempt(
        kind, record.workflow_name, record.foreign_id, run_id, record.status, process, parent=None, consumer=False
    )


def describe(record: Record) -> None:
    """Name the run of the traced write in progress (its workflow, foreign id and status before the write)."""
    attempt = _ATTEMPT.get()
    if attempt is not None:
        span = attempt.span
        span.update_name(f"conveyor {attempt.kind} {record.workflow_name}")
        span.set_attributes(
            {
                WORKFLOW: record.workflow_name,
                FOREIGN_ID: record.foreign_id,
                RUN_ID: record.run_id,
                FROM_STATUS: record.status,
            }
        )


def stamp(record: Record) -> None:
    """Carry the current span's context on `record` into its event, when tracing. Called inside `traced`: if that
    made no span (no tracer provider), there is nothing to carry, and the provider is not asked again (asking
    costs more than the rest of a trigger's bookkeeping)."""
    if _ATTEMPT.get() is not None and isinstance(_tracing, Tracing):
        _tracing.stamp(record)


_UNRESOLVED: Final = object()
_tracing: Any = _UNRESOLVED


def tracer() -> Tracing | None:
    """The process's Tracing, or None when opentelemetry is not installed (looked for once) or no tracer provider
    is set (the API's default one, or its explicit no-op): then nothing is traced and nothing costs."""
    global _tracing
    if _tracing is _UNRESOLVED:
        try:
            from opentelemetry import context, trace
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError:
            _tracing = None
        else:
            _tracing = Tracing(trace, TraceContextTextMapPropagator(), context)
    if _tracing is None or not _tracing.configured():
        return None
    result: Tracing = _tracing
    return result
