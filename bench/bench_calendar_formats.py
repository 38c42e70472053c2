"""Calendar and contact conversion benchmark: parse, update and expansion rates.

    .venv/bin/python bench/bench_calendar_formats.py [--rounds 200]

Times, in-process: iCalendar → item (a meeting with attendees, a daily series), the upload
path with nothing changed and with the subject changed, vCard → item (a full card, and one
with a 5 MB photo), and the expansion of a 10,000-occurrence series as the occurrences
endpoint does it. Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.formats.ical_occurrences import iter_occurrences
from bridge.model import tags
from bridge.store.calendar_items import item_from_ical, item_from_vcard, resource_bytes
from tests.formats.samples import CARD3, MEETING, SERIES


def timed(label: str, rounds: int, fn: Callable[[], object]) -> None:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    each = (time.perf_counter() - start) / rounds
    print(f"{label:<44} {each * 1000:9.3f} ms   {1 / each:10.0f} /s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    meeting = item_from_ical(MEETING)
    renamed = dict(meeting.props)
    renamed[tags.SUBJECT] = "Renamed"
    args = (meeting.message_class,)
    timed("parse meeting (.ics, 5 attendees)", rounds, lambda: item_from_ical(MEETING))
    timed("parse daily series with overrides", rounds, lambda: item_from_ical(SERIES))
    timed(
        "upload meeting, nothing changed",
        rounds,
        lambda: resource_bytes(
            MEETING, *args, meeting.props, meeting.recipients, named=meeting.named
        ),
    )
    timed(
        "upload meeting, subject changed",
        rounds,
        lambda: resource_bytes(MEETING, *args, renamed, meeting.recipients, named=meeting.named),
    )
    timed("parse full vCard 3.0", rounds, lambda: item_from_vcard(CARD3))
    photo = base64.b64encode(os.urandom(5 * 1024 * 1024)).decode()
    folded = "\r\n ".join(photo[i : i + 74] for i in range(0, len(photo), 74))
    big = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P\r\nPHOTO;ENCODING=b:{folded}\r\nEND:VCARD\r\n"
    timed(
        "parse vCard with a 5 MB photo", max(1, rounds // 50), lambda: item_from_vcard(big.encode())
    )
    series = SERIES.replace(b"COUNT=10", b"COUNT=10000")
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    timed(
        "expand a 10,000-occurrence series",
        max(1, rounds // 100),
        lambda: sum(
            1 for _ in iter_occurrences(series, start, start + dt.timedelta(days=15000), dt.UTC)
        ),
    )


if __name__ == "__main__":
    main()
