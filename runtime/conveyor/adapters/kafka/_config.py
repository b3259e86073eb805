"""The librdkafka configuration a KafkaStreamer's clients get: our defaults, the user's settings, and the settings
conveyor's guarantees rest on.

A user's settings (TLS, SASL, client ids, tuning such as `linger.ms`) go on top of our defaults. The properties
that the delivery guarantees depend on are conveyor's and are refused, naming the property, instead of being
silently overridden: offsets are committed by conveyor after the step's transaction (never automatically), each
receiver's consumer group is its name, and the producer is idempotent with `acks=all` so that a retried publish
neither duplicates nor loses an event. A property librdkafka does not know, or a value it cannot read, is
refused when the streamer opens, naming the argument and the property.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from conveyor.errors import InvalidInput

# Why each is conveyor's (said in the refusal).
_OWNED_BY_ALL = {
    "bootstrap.servers": "given as bootstrap_servers",
    "metadata.broker.list": "given as bootstrap_servers",
}
_OWNED_BY_CONSUMERS = {
    "group.id": "each receiver's consumer group is its name without the -k-of-n suffix",
    "enable.auto.commit": "offsets are committed only after the step's transaction has committed",
    "enable.auto.offset.store": "offsets are committed only after the step's transaction has committed",
    "auto.offset.reset": "a new consumer group starts from the earliest offset (or the latest, for from_latest)",
}
_OWNED_BY_PRODUCER = {
    "enable.idempotence": "a retried publish must not duplicate an event",
    "acks": "an event counts as published only once every in-sync replica has it",
    "request.required.acks": "an event counts as published only once every in-sync replica has it",
    "transactional.id": "the outbox relay publishes idempotently, not in Kafka transactions",
}

# Latency-bound by design: every request of ours waits on its answer, so Nagle's algorithm and lingering only
# add delay (users who want bigger batches can set linger.ms themselves).
_CLIENT_DEFAULTS: dict[str, Any] = {"socket.nagle.disable": True}
_PRODUCER_DEFAULTS: dict[str, Any] = {"linger.ms": 0, "client.id": "conveyor"}
# How long the broker holds a fetch that finds nothing: it answers as soon as one message arrives, so this sets what
# an idle consumer costs, not how soon it sees an event (we never pause, resume or seek a partition mid-stream,
# which would wait for the fetch in flight). At 50 ms, 13 idle workers cost the broker about 100 ms of CPU a
# second (bench/deployed.py, at rest); 500 is librdkafka's own default, said here so it does not move under us.
_CONSUMER_DEFAULTS: dict[str, Any] = {"fetch.wait.max.ms": 500}

_PRODUCER_FIXED: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}
_CONSUMER_FIXED: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
}

_QUOTED = re.compile(r'"([^"]+)"')


def checked(argument: str, config: object, owned: Mapping[str, str]) -> dict[str, Any]:
    """`config` as a dict, or InvalidInput naming `argument` (and the property) if it is not a mapping of
    librdkafka property names to values, or sets a property conveyor owns. A refusal says a value's type, never the
    value: settings hold passwords."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise InvalidInput(argument, "a mapping of librdkafka property names to values", type(config).__name__)
    for key, value in config.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidInput(argument, "librdkafka property names (non-empty strings) as keys", key)
        field = f"{argument}[{key!r}]"
        why = owned.get(key)
        if why is not None:
            raise InvalidInput(field, f"not set: conveyor sets {key} itself ({why})")
        if key.endswith("_cb") or key == "logger":
            if not callable(value):
                raise InvalidInput(field, "a callable (librdkafka callback)", type(value).__name__)
        elif not isinstance(value, str | int | float):  # bool is an int
            raise InvalidInput(field, "a string, number or boolean", type(value).__name__)
    return dict(config)


class ClientConfigs:
    """What the admin client, the producer and each consumer are built with."""

    def __init__(
        self,
        bootstrap_servers: str,
        client_config: object,
        producer_config: object,
        consumer_config: object,
    ) -> None:
        common = checked("client_config", client_config, {**_OWNED_BY_ALL, **_OWNED_BY_PRODUCER, **_OWNED_BY_CONSUMERS})
        producer = checked("producer_config", producer_config, {**_OWNED_BY_ALL, **_OWNED_BY_PRODUCER})
        consumer = checked("consumer_config", consumer_config, {**_OWNED_BY_ALL, **_OWNED_BY_CONSUMERS})
        self._given = {"client_config": common, "producer_config": producer, "consumer_config": consumer}
        base = {**_CLIENT_DEFAULTS, **common, "bootstrap.servers": bootstrap_servers}
        self.admin = base
        self.producer = {**_PRODUCER_DEFAULTS, **base, **producer, **_PRODUCER_FIXED}
        self._consumer = {**_CONSUMER_DEFAULTS, **base, **consumer, **_CONSUMER_FIXED}

    def consumer(self, group: str) -> dict[str, Any]:
        return {**self._consumer, "group.id": group}

    def refusal(self, error: KafkaException, *arguments: str) -> InvalidInput | None:
        """The InvalidInput for a client that librdkafka refused to create because of its configuration (naming
        the argument, and the property when the argument sets it), or None if `error` is not about that."""
        kafka_error = error.args[0] if error.args else None
        if not isinstance(kafka_error, KafkaError) or kafka_error.code() != KafkaError._INVALID_ARG:
            return None
        said = kafka_error.str()
        named = _QUOTED.findall(said)
        for argument in arguments:
            for key in self._given[argument]:
                if key in named:
                    return InvalidInput(f"{argument}[{key!r}]", "a property and value librdkafka accepts", said)
        # librdkafka may name a property by its canonical name (linger.ms is queue.buffering.max.ms to it).
        setting = [argument for argument in arguments if self._given[argument]]
        return InvalidInput(" or ".join(setting or arguments), "properties and values librdkafka accepts", said)
