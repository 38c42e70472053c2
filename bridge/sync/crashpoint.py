"""A test-only hook that ends the process abruptly in the middle of a sync run.

With `KBRIDGE_TEST_CRASH_AFTER=N` in the environment, the Nth step a sync run reaches (a
change applied on the server, a journal entry confirmed, a server change applied to the
cache) ends the process at once with exit code 86, as a power cut or `kill -9` would: no
cleanup, no flush beyond what SQLite already committed. The kill tests use it to show that
a run interrupted at any step loses and duplicates nothing. Unset (always, outside those
tests), `step()` does nothing.
"""

from __future__ import annotations

import os

ENV = "KBRIDGE_TEST_CRASH_AFTER"
EXIT_CODE = 86

_remaining: int | None = None
_loaded = False


def step(what: str) -> None:
    """One step of a sync run is done; `what` names it (written to stderr on the crash)."""
    global _remaining, _loaded
    if not _loaded:
        _loaded = True
        value = os.environ.get(ENV, "")
        _remaining = int(value) if value.isdigit() and int(value) > 0 else None
    if _remaining is None:
        return
    _remaining -= 1
    if _remaining == 0:
        os.write(2, f"kbridge: test crash after step: {what}\n".encode())
        os._exit(EXIT_CODE)
