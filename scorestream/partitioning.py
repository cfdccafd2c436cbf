"""Java-compatible key partitioning: Kafka's murmur2, as the Java client's default partitioner.

Every scorestream producer sets ``partitioner=murmur2_random`` (librdkafka's name for the Java
partitioner), so a key lands on the same partition whichever client produced it: Java, Kafka
Connect, kcat with ``-X partitioner=murmur2_random``, or the gateway. The stateful services use
:func:`partition_for` to check that a record sits where its key belongs.
"""

from __future__ import annotations

from functools import lru_cache

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (seed 0x9747b28c), as a signed 32-bit integer."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[i * 4 : i * 4 + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    tail = n4 * 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java client (and ``murmur2_random``) picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
