"""Which partition an event goes to: Kafka's own default (murmur2 of the key, as the Java client computes it), so
every producer, in any language, puts a foreign id in the same partition and per-foreign-id order holds."""

from __future__ import annotations

import functools

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """32-bit murmur2 exactly as org.apache.kafka.common.utils.Utils.murmur2 (returned as a signed int)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


# Every event of a run and every handoff asks for its foreign id's partition: remember the recent ones.
@functools.lru_cache(maxsize=65536)
def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partition of a key: toPositive(murmur2(key)) % partitions."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owned_partitions(partitions: int, shard_index: int, shard_count: int) -> list[int]:
    """Shard k of n reads the partitions p with p % n == k - 1: every partition has exactly one owner."""
    return [p for p in range(partitions) if p % shard_count == shard_index - 1]
