"""What one DAV sync run did, as `/api/v1/sync/status` shows it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DavReport:
    fetched: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: int = 0
    pushed: int = 0
    outside_window: int = 0
    malformed: list[str] = field(default_factory=list)  # "href: reason"
    failed: list[str] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)  # collection href → pull path

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
