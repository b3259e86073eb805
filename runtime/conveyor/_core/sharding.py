"""Which shard a foreign id belongs to. Stable across processes, versions and languages: CRC-32 (IEEE, as zlib
computes it) of the UTF-8 foreign id, modulo the shard count. Every event of a foreign id lands in one shard, so
per-foreign-id order holds within a sharded step."""

from __future__ import annotations

import zlib


def shard_of(foreign_id: str, count: int) -> int:
    """The shard (1-based) of `foreign_id` among `count` shards."""
    if count <= 1:
        return 1
    return zlib.crc32(foreign_id.encode()) % count + 1
