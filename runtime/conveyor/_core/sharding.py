"""Which shard a foreign id belongs to where conveyor itself splits events by shard: the memory streamer's
shards and the filter of a sharded connector's events. Stable across processes, versions and languages: CRC-32
(IEEE, as zlib computes it) of the UTF-8 foreign id, modulo the shard count. Every event of a foreign id lands in
one shard, so per-foreign-id order holds within a sharded step.

The Kafka streamer does not use it: there a foreign id's partition is Kafka's default for its key (murmur2), and
shard k of n owns the partitions p with p % n == k - 1 (conveyor.adapters.kafka._partitioner), so the same
foreign id can be in another shard on Kafka than here. A streamer only has to be consistent with itself."""

from __future__ import annotations

import zlib


def shard_of(foreign_id: str, count: int) -> int:
    """The shard (1-based) of `foreign_id` among `count` shards."""
    if count <= 1:
        return 1
    return zlib.crc32(foreign_id.encode()) % count + 1
