"""Where a hop's milliseconds go, from what the runs left behind: each hop (one stored version of a run to the next)
split at the moment its event was published.

- decided -> published: from the engine deciding a version (its history row's `updated_at`, taken before the
  write) to the outbox relay producing the version's event (the Kafka message's timestamp, which the relay's
  sender sets as it produces): the store's transaction and commit, the NOTIFY waking the relay, the relay's
  listing of the outbox, the produce call.
- published -> next decided: from there to the next version's decision: the broker, the consumer's fetch, the
  step consumer's lookup of the run and the step itself. In the single-process shape the next step is handed the
  record in process as soon as it is stored, so this part can be negative: the event is published, but nothing
  waits for it.

Kafka timestamps have millisecond resolution, so each part is good to half a millisecond per hop; their medians
over a curve point's runs are what is reported."""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from dataclasses import dataclass
from typing import Any

from _load import histories
from _workload import Stage

# The topics of the events that start a hop: the trigger's (RECEIVED) and the two steps' after it.
HOP_STATUSES = [Stage.RECEIVED, Stage.CHECKED, Stage.PRICED]


@dataclass(frozen=True)
class HopSplit:
    decided_to_published_ms: float
    published_to_next_decided_ms: float

    def as_json(self) -> dict[str, float]:
        return {
            "decided_to_published_p50_ms": round(self.decided_to_published_ms, 2),
            "published_to_next_decided_p50_ms": round(self.published_to_next_decided_ms, 2),
        }


def published_at(kafka: str, workflow: str) -> dict[tuple[str, int], float]:
    """(run id, record version) -> seconds since the epoch at which its event was produced, for every event on the
    workflow's hop topics (read from the start to the end as they are now)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"bench-hops-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        names = [f"{workflow.replace(' ', '_')}-{int(status)}" for status in HOP_STATUSES]
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [TopicPartition(n, p, 0) for n in names if n in metadata for p in metadata[n].partitions]
        consumer.assign(partitions)
        found: dict[tuple[str, int], float] = {}
        at_end: set[tuple[str, int]] = set()
        while len(at_end) < len(partitions):
            for message in consumer.consume(500, 1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add((message.topic() or "", message.partition() or 0))
                        continue
                    raise RuntimeError(f"reading the hop topics of {workflow}: {error}")
                headers = json.loads(message.value() or b"{}").get("headers", {})
                _, millis = message.timestamp()
                # A whole millisecond (the sender truncates) stands for the middle of that millisecond.
                found[(headers["run_id"], int(headers["record_version"]))] = (millis + 0.5) / 1000
        return found
    finally:
        consumer.close()


async def split(pool: Any, kafka: str, workflow: str, run_ids: list[str]) -> HopSplit | None:
    """The median of each part over every hop of these runs; None if no hop's event was found."""
    rows = await histories(pool, run_ids)
    published = await asyncio.to_thread(published_at, kafka, workflow)
    before, after = [], []
    for run_id, versions, decided, _ in rows:
        for index in range(len(versions) - 1):
            at = published.get((run_id, versions[index]))
            if at is not None:
                before.append((at - decided[index]) * 1000)
                after.append((decided[index + 1] - at) * 1000)
    if not before:
        return None
    return HopSplit(statistics.median(before), statistics.median(after))
