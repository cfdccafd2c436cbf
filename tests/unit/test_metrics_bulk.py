"""``metrics.observe_many`` gives the exposition that observing one value at a time gives."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from scorestream import metrics


def _samples(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but ``_created`` (a timestamp), keyed by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in reg.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _same(a: CollectorRegistry, b: CollectorRegistry) -> None:
    sa, sb = _samples(a), _samples(b)
    assert sa.keys() == sb.keys()
    for key, value in sa.items():
        if key[0].endswith("_sum"):  # numpy adds pairwise, observe() one by one
            assert sb[key] == pytest.approx(value, rel=1e-12, abs=1e-12)
        else:
            assert sb[key] == value, key


def _pair() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    regs = CollectorRegistry(), CollectorRegistry()
    hists = [
        Histogram("h", "test", ["t"], buckets=metrics.LATENCY_BUCKETS, registry=r) for r in regs
    ]
    return regs[0], hists[0], regs[1], hists[1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0, max_value=30, allow_nan=False),
            st.sampled_from([*metrics.LATENCY_BUCKETS, 0.0, math.inf]),  # exactly on a bound
        ),
        max_size=300,
    )
)
def test_bulk_observation_equals_one_by_one(values: list[float]) -> None:
    reg_a, one_by_one, reg_b, bulk = _pair()
    for v in values:
        one_by_one.labels("x").observe(v)
    metrics.observe_many(bulk.labels("x"), values)
    one_by_one.labels("x")  # the child exists on both sides, even with nothing observed
    _same(reg_a, reg_b)


def test_bulk_observation_adds_to_what_is_there() -> None:
    reg_a, one_by_one, reg_b, bulk = _pair()
    for v in (0.002, 0.3, 7.0, 0.002):
        one_by_one.labels("x").observe(v)
    bulk.labels("x").observe(0.002)
    metrics.observe_many(bulk.labels("x"), [0.3, 7.0])
    metrics.observe_many(bulk.labels("x"), [0.002])
    _same(reg_a, reg_b)
