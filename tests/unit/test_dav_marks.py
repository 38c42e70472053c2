"""Change marks between full listings (bridge/upstream/dav_marks.py)."""

from __future__ import annotations

import pytest

from bridge.upstream.dav_marks import ChangeMarks, settled

T0 = "Thu, 26 Nov 2026 03:00:00 GMT"
T1 = "Thu, 26 Nov 2026 03:00:01 GMT"
T2 = "Thu, 26 Nov 2026 03:00:02 GMT"
T5 = "Thu, 26 Nov 2026 03:00:05 GMT"


@pytest.mark.parametrize(
    ("modified", "date", "expected"),
    [
        (T0, T2, True),
        (T0, T1, False),  # under SETTLE: a Date taken before the listing, clock rounding
        (T0, T0, False),
        (T5, T0, False),  # last-modified in the server's future
        (None, T2, False),
        (T0, None, False),
        ("yesterday", T2, False),
        (T0, "not a date", False),
    ],
)
def test_settled(modified: str | None, date: str | None, expected: bool) -> None:
    assert settled(modified, date) is expected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_probe_only_between_full_listings() -> None:
    clock = Clock()
    marks = ChangeMarks(True, 600.0, clock)
    assert not marks.probing()  # no full listing yet
    marks.record("/c/", T0, T5, "ctag-1", None)
    marks.full_listing_done()
    assert marks.probing()
    assert marks.unchanged("/c/", T0) == marks.seen["/c/"]
    assert marks.unchanged("/c/", T1) is None  # changed
    assert marks.unchanged("/c/", None) is None  # no last-modified named
    assert marks.unchanged("/other/", T0) is None  # never seen
    clock.now += 601
    assert not marks.probing()  # a full listing is due
    assert not ChangeMarks(False, 600.0, clock).probing()


def test_unsettled_marks_are_not_reused() -> None:
    marks = ChangeMarks(True, 600.0, Clock())
    marks.record("/c/", T0, T1, "ctag-1", None)
    assert marks.unchanged("/c/", T0) is None


def test_no_ctag_no_mark() -> None:
    marks = ChangeMarks(True, 600.0, Clock())
    marks.record("/c/", T0, T5, "ctag-1", None)
    marks.record("/c/", T0, T5, None, None)
    assert marks.unchanged("/c/", T0) is None


def test_a_server_whose_last_modified_lags_turns_the_probe_off() -> None:
    marks = ChangeMarks(True, 600.0, Clock())
    marks.record("/c/", T0, T5, "ctag-1", "tok-1")
    marks.full_listing_done()
    marks.record("/c/", T0, T5, "ctag-2", "tok-2")  # the next full listing: CTag moved
    assert not marks.enabled and not marks.probing()


def test_a_first_sync_mark_has_no_ctag_and_is_reused_while_settled() -> None:
    marks = ChangeMarks(True, 600.0, Clock())
    marks.record_first("/c/", T0, T5)
    marks.full_listing_done()
    seen = marks.unchanged("/c/", T0)
    assert seen is not None and seen.ctag is None and seen.modified == T0
    assert marks.unchanged("/c/", T1) is None
    unsettled = ChangeMarks(True, 600.0, Clock())
    unsettled.record_first("/c/", T0, T1)
    assert unsettled.unchanged("/c/", T0) is None


def test_a_ctag_read_after_a_first_sync_mark_keeps_the_probe_on() -> None:
    """No CTag was seen beside the first mark: a CTag now is no sign of a lagging server."""
    marks = ChangeMarks(True, 600.0, Clock())
    marks.record_first("/c/", T0, T5)
    marks.record("/c/", T0, T5, "ctag-1", None)
    assert marks.enabled
    assert marks.seen["/c/"].ctag == "ctag-1"
