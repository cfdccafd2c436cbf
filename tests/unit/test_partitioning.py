"""Java-compatible partitioning: murmur2 against the reference implementations' own test vectors.

A key must land on the partition the Java client (and librdkafka's ``murmur2_random``) picks,
or the enricher would find an account's records on a partition that does not hold its state.
"""

from __future__ import annotations

import pytest

from scorestream.kafka_config import producer_config, transactional_producer_config
from scorestream.partitioning import murmur2, partition_for
from scorestream.settings import KafkaSettings

# Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2
KAFKA_UTILS_TEST = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# librdkafka, src/rdmurmur2.c, unittest_murmur2 (unsigned there; every tail length 0-3 and the
# empty key)
LIBRDKAFKA_UNITTEST = [
    (b"kafka", 0xD067CF64),
    (b"giberish123456789", 0x8F552B0C),
    (b"1234", 0x9FC97B14),
    (b"234", 0xE7C009CA),
    (b"34", 0x873930DA),
    (b"4", 0x5A4B5CA1),
    (b"PreAmbleWillBeRemoved,ThePrePartThatIs", 0x78424F1C),
    (b"reAmbleWillBeRemoved,ThePrePartThatIs", 0x4A62B377),
    (b"eAmbleWillBeRemoved,ThePrePartThatIs", 0xE0E4E09E),
    (b"AmbleWillBeRemoved,ThePrePartThatIs", 0x62B8B43F),
    (b"", 0x106E08D9),
]


@pytest.mark.parametrize(("key", "expected"), KAFKA_UTILS_TEST)
def test_murmur2_matches_kafka_utils_test(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize(("key", "unsigned"), LIBRDKAFKA_UNITTEST)
def test_murmur2_matches_librdkafka_unittest(key: bytes, unsigned: int) -> None:
    assert murmur2(key) & 0xFFFFFFFF == unsigned


def test_murmur2_is_a_signed_32_bit_integer() -> None:
    values = [murmur2(f"acc-{i:06d}".encode()) for i in range(2000)]
    assert all(-(2**31) <= v < 2**31 for v in values)
    assert any(v < 0 for v in values)
    assert any(v > 0 for v in values)


def test_murmur2_hashes_bytes_not_text() -> None:
    """Non-ASCII bytes are folded in as unsigned (Java's ``& 0xff``), in every tail position."""
    for key in (b"\xff", b"\xff\xfe", b"\xff\xfe\xfd", b"\xff\xfe\xfd\xfc", "Zürich".encode()):
        assert murmur2(key) == _reference_murmur2(key)


def test_murmur2_equals_an_independent_transcription_of_the_java_code() -> None:
    for n in range(40):
        key = bytes((i * 37 + n * 11) % 256 for i in range(n))
        assert murmur2(key) == _reference_murmur2(key), key


@pytest.mark.parametrize(("key", "expected"), KAFKA_UTILS_TEST)
@pytest.mark.parametrize("partitions", [1, 3, 6, 12, 50])
def test_partition_for_is_the_java_default_partitioner(
    key: bytes, expected: int, partitions: int
) -> None:
    # Java: Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions; toPositive = & 0x7fffffff
    assert partition_for(key, partitions) == (expected & 0x7FFFFFFF) % partitions


def test_partition_for_known_placements() -> None:
    # toPositive(-790332482) = 1357151166
    assert partition_for(b"foobar", 10) == 6
    assert partition_for(b"foobar", 50) == 16
    # a negative hash is masked, not negated (abs() would give another partition)
    h = murmur2(b"21")
    assert h < 0
    assert partition_for(b"21", 7) == (h & 0x7FFFFFFF) % 7 != abs(h) % 7


def test_partition_for_spreads_accounts_over_every_partition() -> None:
    counts = [0] * 12
    for i in range(6000):
        counts[partition_for(f"acc-{i:06d}".encode(), 12)] += 1
    assert min(counts) > 350  # 500 expected each
    assert sum(counts) == 6000


def _reference_murmur2(data: bytes) -> int:
    """A line-by-line transcription of Kafka's ``Utils.murmur2`` with 32-bit wrap-around."""

    def i32(x: int) -> int:
        x &= 0xFFFFFFFF
        return x - (1 << 32) if x & 0x80000000 else x

    def ushr(x: int, n: int) -> int:  # Java's >>>
        return (x & 0xFFFFFFFF) >> n

    length = len(data)
    m = 0x5BD1E995
    h = i32(0x9747B28C ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = i32(data[i4] + (data[i4 + 1] << 8) + (data[i4 + 2] << 16) + (data[i4 + 3] << 24))
        k = i32(k * m)
        k ^= ushr(k, 24)
        k = i32(k * m)
        h = i32(h * m)
        h = i32(h ^ k)
    rest = length % 4
    base = length & ~3
    if rest == 3:
        h = i32(h ^ (data[base + 2] << 16))
    if rest >= 2:
        h = i32(h ^ (data[base + 1] << 8))
    if rest >= 1:
        h = i32(h ^ data[base])
        h = i32(h * m)
    h = i32(h ^ ushr(h, 13))
    h = i32(h * m)
    return i32(h ^ ushr(h, 15))


def test_every_producer_config_uses_the_java_partitioner() -> None:
    """partition_for is only the truth if librdkafka places keys the same way."""
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    assert producer_config(kafka)["partitioner"] == "murmur2_random"
    tx_conf = transactional_producer_config(kafka, transactional_id="enricher-0")
    assert tx_conf["partitioner"] == "murmur2_random"
