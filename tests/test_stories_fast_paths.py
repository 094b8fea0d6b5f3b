"""The story index's fast paths compute bit for bit what the general paths they stand beside compute (issue 10,
item 5: faster assignment with identical results). Each test replays real labelled sets and the synthetic
stream with the index checking, at every call, the fast path against the general one."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import monitor.stories.event as event
from tests.support.golden_assignments import SETS, assignments
from tests.support.synthetic_stream import stream_digest


@pytest.fixture
def overlaps_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every `_overlaps` call computed both ways; yields the sizes (centroid features) of the calls compared."""
    general = event.EventIndex._overlaps
    sizes: list[int] = []

    def both(
        self: event.EventIndex,
        clusters: list[event._Cluster],
        weighed: event.Weighed,
        results: list[int],
        units: list[int],
    ) -> list[event._Overlap]:
        # Both ways on every call, whichever `_overlaps` would take at this size.
        fast = event.EventIndex._small_overlaps(clusters, weighed, results, units)
        monkeypatch.setattr(event, "_SMALL_OVERLAPS", -1)  # the numpy pass, whatever the size
        slow = general(self, clusters, weighed, results, units)
        monkeypatch.setattr(event, "_SMALL_OVERLAPS", small)
        assert fast == slow  # floats compared exactly
        sizes.append(sum(len(cluster.features) for cluster in clusters))
        return slow

    small = event._SMALL_OVERLAPS
    monkeypatch.setattr(event.EventIndex, "_overlaps", both)
    yield sizes


@pytest.mark.parametrize("name", [name for name in SETS if name.startswith("stories/")])
def test_small_overlaps_equal_the_numpy_pass_on_the_labelled_sets(
    name: str, overlaps_checked: list[int]
) -> None:
    assignments(name)
    assert overlaps_checked  # the set reached the event tier's scoring


def test_small_overlaps_equal_the_numpy_pass_on_the_synthetic_stream(overlaps_checked: list[int]) -> None:
    stream_digest(1500)
    assert len(overlaps_checked) > 100


@pytest.fixture
def candidates_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every `_candidates` call ranked both ways (Counter and numpy); yields how many candidates each gave."""
    general = event.EventIndex._candidates
    found: list[int] = []

    def both(
        self: event.EventIndex, terms: dict[int, float], shared: dict[int, float]
    ) -> list[event._Cluster]:
        monkeypatch.setattr(event, "_COUNTED_PROBES", 10**9)
        counted = general(self, terms, shared)
        monkeypatch.setattr(event, "_COUNTED_PROBES", -1)  # numpy, whatever the length
        ranked = general(self, terms, shared)
        monkeypatch.setattr(event, "_COUNTED_PROBES", limit)
        assert [cluster.cid for cluster in counted] == [cluster.cid for cluster in ranked]
        found.append(len(ranked))
        return ranked

    limit = event._COUNTED_PROBES
    monkeypatch.setattr(event.EventIndex, "_candidates", both)
    yield found


@pytest.mark.parametrize("name", [name for name in SETS if name.startswith("stories/")])
def test_counted_candidates_equal_the_numpy_ranking_on_the_labelled_sets(
    name: str, candidates_checked: list[int]
) -> None:
    assignments(name)
    assert max(candidates_checked) >= 2  # rankings of several candidates were compared


def test_counted_candidates_equal_the_numpy_ranking_on_the_synthetic_stream(
    candidates_checked: list[int],
) -> None:
    stream_digest(1500)
    assert max(candidates_checked) >= 2


def test_pairwise_sum_adds_as_numpy_does() -> None:
    rng = np.random.default_rng(8)
    for count in [*range(0, 300), 511, 512]:
        values = (rng.random(count) * 12.0) ** 2
        listed = values.tolist()
        assert event._pairwise_sum(listed, 0, count) == float(values.sum()), count
        if count > 3:  # a slice from an offset, as the recursion takes it
            assert event._pairwise_sum(listed, 3, count - 3) == float(values[3:].sum()), count


@pytest.fixture
def renorms_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every `_renorm` call made both ways; yields the centroid sizes compared."""
    sizes: list[int] = []
    general = event.EventIndex._renorm

    def both(self: event.EventIndex, cluster: event._Cluster) -> None:
        monkeypatch.setattr(event, "_SMALL_RENORM", -1)  # numpy
        general(self, cluster)
        monkeypatch.setattr(event, "_SMALL_RENORM", limit)
        expected = (cluster.norm_terms, cluster.norm_shared, cluster.norm_items)
        cluster.norm_terms = cluster.norm_shared = -1.0
        self._small_renorm(cluster)
        assert (cluster.norm_terms, cluster.norm_shared, cluster.norm_items) == expected  # exactly
        sizes.append(len(cluster.features))

    limit = event._SMALL_RENORM
    monkeypatch.setattr(event.EventIndex, "_renorm", both)
    yield sizes


@pytest.mark.parametrize("name", [name for name in SETS if name.startswith("stories/")])
def test_small_renorm_equals_the_numpy_norms_on_the_labelled_sets(
    name: str, renorms_checked: list[int]
) -> None:
    assignments(name)
    assert max(renorms_checked) >= 8  # centroids past the plain loop of the pairwise sum


def test_small_renorm_equals_the_numpy_norms_on_the_synthetic_stream(renorms_checked: list[int]) -> None:
    stream_digest(1500)
    assert max(renorms_checked) > 64  # (the halving above 128 values: test_pairwise_sum_adds_as_numpy_does)
