"""KafkaStreamer's librdkafka settings: the user's go on top of our defaults, the ones the guarantees rest on are
refused by name, and what librdkafka itself refuses is said naming the argument and the property."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from conveyor.adapters.base import OutgoingEvent
from conveyor.adapters.kafka import KafkaStreamer
from conveyor.adapters.kafka._config import ClientConfigs
from conveyor.errors import InvalidInput
from conveyor.testing.conformance import EventStreamerSuite


class TestKafkaStreamerTuned(EventStreamerSuite):
    """The whole streamer conformance suite with a user's tuning: batching producers and eager consumers keep
    every guarantee."""

    @pytest.fixture
    async def event_streamer(self, kafka_bootstrap: str) -> AsyncIterator[KafkaStreamer]:
        streamer = KafkaStreamer(
            kafka_bootstrap,
            partitions=6,
            client_config={"client.id": "tuned", "socket.keepalive.enable": True},
            producer_config={"linger.ms": 5, "compression.type": "lz4"},
            consumer_config={"fetch.wait.max.ms": 10, "fetch.min.bytes": 1},
        )
        await streamer.open()
        yield streamer
        await streamer.close()


@pytest.mark.parametrize(
    ("argument", "key", "value"),
    [
        ("client_config", "bootstrap.servers", "elsewhere:9092"),
        ("client_config", "group.id", "mine"),
        ("client_config", "enable.idempotence", False),
        ("producer_config", "acks", 1),
        ("producer_config", "request.required.acks", "1"),
        ("producer_config", "transactional.id", "tx"),
        ("consumer_config", "enable.auto.commit", True),
        ("consumer_config", "enable.auto.offset.store", True),
        ("consumer_config", "auto.offset.reset", "latest"),
        ("consumer_config", "metadata.broker.list", "elsewhere:9092"),
    ],
)
def test_a_setting_the_guarantees_rest_on_is_refused_by_name(argument: str, key: str, value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        KafkaStreamer("127.0.0.1:9", **{argument: {key: value}})  # type: ignore[arg-type]
    assert info.value.field == f"{argument}[{key!r}]"
    assert "conveyor sets" in info.value.expected


@pytest.mark.parametrize(
    ("argument", "config", "field", "expected"),
    [
        ("client_config", ["linger.ms", 5], "client_config", "a mapping"),
        ("producer_config", "linger.ms=5", "producer_config", "a mapping"),
        ("consumer_config", {5: "x"}, "consumer_config", "non-empty strings"),
        ("client_config", {"": 1}, "client_config", "non-empty strings"),
        ("producer_config", {"linger.ms": None}, "producer_config['linger.ms']", "a string, number or boolean"),
        ("consumer_config", {"fetch.min.bytes": [1]}, "consumer_config['fetch.min.bytes']", "a string, number"),
        ("client_config", {"error_cb": "print"}, "client_config['error_cb']", "a callable"),
    ],
)
def test_a_malformed_setting_is_refused_by_name(argument: str, config: object, field: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as info:
        KafkaStreamer("127.0.0.1:9", **{argument: config})  # type: ignore[arg-type]
    assert info.value.field == field
    assert expected in info.value.expected


def test_the_users_settings_go_over_the_defaults_and_never_over_the_guarantees() -> None:
    def on_error(error: object) -> None:
        return None

    configs = ClientConfigs(
        "broker:9092",
        {"client.id": "mine", "socket.nagle.disable": False, "error_cb": on_error},
        {"linger.ms": 20},
        {"fetch.wait.max.ms": 100},
    )
    assert configs.admin == {
        "socket.nagle.disable": False,
        "client.id": "mine",
        "error_cb": on_error,
        "bootstrap.servers": "broker:9092",
    }
    assert configs.producer["linger.ms"] == 20 and configs.producer["client.id"] == "mine"
    assert configs.producer["enable.idempotence"] is True and configs.producer["acks"] == "all"
    assert "fetch.wait.max.ms" not in configs.producer
    consumer = configs.consumer("orders-1-consumer")
    assert consumer["fetch.wait.max.ms"] == 100 and consumer["group.id"] == "orders-1-consumer"
    assert consumer["enable.auto.commit"] is False and consumer["enable.auto.offset.store"] is False
    assert "linger.ms" not in consumer
    # Without settings: latency-bound defaults, and an idle consumer's fetch held as long as librdkafka holds it.
    plain = ClientConfigs("broker:9092", None, None, None)
    assert plain.producer["linger.ms"] == 0 and plain.consumer("g")["fetch.wait.max.ms"] == 500
    assert plain.admin == {"socket.nagle.disable": True, "bootstrap.servers": "broker:9092"}


async def test_a_property_librdkafka_does_not_know_is_refused_on_open_naming_it() -> None:
    # Refused before any connection is tried: no broker is needed to find the mistake.
    streamer = KafkaStreamer("127.0.0.1:9", client_config={"socket.keepalive": True}, timeout=2)
    with pytest.raises(InvalidInput) as info:
        await streamer.open()
    assert info.value.field == "client_config['socket.keepalive']"
    assert "No such configuration property" in str(info.value)


async def test_a_value_librdkafka_cannot_read_is_refused_naming_the_argument(kafka_bootstrap: str) -> None:
    producer = KafkaStreamer(kafka_bootstrap, producer_config={"linger.ms": "soon"})
    with pytest.raises(InvalidInput) as info:
        await producer.open()
    # librdkafka names linger.ms by its canonical name (queue.buffering.max.ms): the argument is still named.
    assert info.value.field == "producer_config"
    assert "queue.buffering.max.ms" in str(info.value)

    consumer = KafkaStreamer(kafka_bootstrap, consumer_config={"fetch.min.bytes": "lots"})
    await consumer.open()
    try:
        topic = f"config-{uuid.uuid4().hex[:8]}"
        with pytest.raises(InvalidInput) as info:
            await consumer.receiver(topic, "config-receiver")
        assert info.value.field == "consumer_config['fetch.min.bytes']"
        # The streamer still works: nothing was left half made.
        sender = await consumer.sender(topic)
        await sender.send([OutgoingEvent("fid", 1, {"topic": topic})])
    finally:
        await consumer.close()
