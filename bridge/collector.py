"""Memory settings of the bridge's processes: the cyclic garbage collector's, in the server
and the sync's worker processes (the mail parser, the DAV resource parsers), and the C
library's malloc arenas, in the server."""

from __future__ import annotations

import ctypes
import gc
import os

M_ARENA_MAX = -8  # glibc's malloc.h
MALLOC_ARENAS = 2


def tune_gc() -> None:
    """What is loaded at the start is left out of every later collection (`gc.freeze`),
    and the youngest generation is collected after 20,000 new objects instead of 700: a
    large pull makes hundreds of thousands of objects and nearly no cycles (a first sync
    of 15,000 DAV items spent 0.4 s of its process's CPU in collections, 0.03 s with these
    settings; the mail parsing worker of the benchmark's 20,000 messages spends about
    0.1 s less, 3 % of its CPU)."""
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def glibc() -> bool:
    """Whether this process runs on the GNU C library."""
    confstr = getattr(os, "confstr", None)  # none on Windows
    if confstr is None:
        return False
    try:
        return str(confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (OSError, ValueError):  # a name this platform does not know
        return False


def tune_malloc() -> bool:
    """On glibc, at most MALLOC_ARENAS malloc arenas for the threads started from now on
    (call it before the store opens its connections); elsewhere nothing. Returns whether
    it was set.

    glibc gives a thread that allocates while another does an arena of its own (up to 8
    per core), and memory freed in one arena serves no other: the store's database
    threads and the event loop each kept their high-water marks. With two arenas the
    benchmark's pull of 20,000 messages and its full-text indexing peaked at 124–126 MB
    instead of 137–144 MB (the pull alone at 123–124 MB instead of 126–130 MB), the pull
    taking 8.1 s instead of 7.9 s (means of seven alternating runs each; single runs
    vary more than that)."""
    if not glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, MALLOC_ARENAS))
