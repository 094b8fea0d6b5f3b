"""The story index's fast paths compute bit for bit what the general paths they stand beside compute (issue 10,
item 5: faster assignment with identical results). Each test replays real labelled sets and the synthetic
stream with the index checking, at every call, the fast path against the general one."""

from __future__ import annotations

from collections.abc import Iterator

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
