"""Apache Kafka event streamer (confluent-kafka): topics per status as the reference names them, partitioned by
foreign id with Kafka's default partitioner, each shard reading only its own partitions."""

from conveyor.adapters.kafka._streamer import KafkaStreamer, group_id

__all__ = ["KafkaStreamer", "group_id"]
