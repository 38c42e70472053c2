"""How the sync starts worker processes (the DAV resource parsers).

Where the platform has it (Linux, macOS), through a fork server: one clean process,
started early and with the format converters already imported, forks each worker in a few
milliseconds, where a spawned worker spends about half a second of CPU importing them,
at the very moment a large pull's data has arrived. The sync process itself is never
forked (it runs threads). Elsewhere (Windows), workers are spawned.

The fork server also imports the modules of this package that the sync process has
imported when it starts: a new worker imports the program's main module again (that is
how multiprocessing finds a task's function), and the main module imports them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
from multiprocessing.context import BaseContext

log = logging.getLogger(__name__)

PRELOAD = ["bridge.sync.dav_parse"]  # what every worker needs, imported once by the server


def context() -> BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(preload())
        return ctx
    return multiprocessing.get_context("spawn")


def preload() -> list[str]:
    """What the fork server imports: PRELOAD and the package's modules imported here (a
    `__main__` module is left out: importing it would run the program)."""
    here = sorted(
        name
        for name in list(sys.modules)
        if (name == "bridge" or name.startswith("bridge.")) and not name.endswith("__main__")
    )
    return PRELOAD + [name for name in here if name not in PRELOAD]


def warm_up() -> None:
    """Start the fork server now (it imports `preload()` while the sync waits on the server),
    so that the first workers cost nothing later. Without a fork server: nothing to do."""
    ctx = context()
    if ctx.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    with contextlib.suppress(Exception):  # the workers then start the ordinary way
        forkserver.ensure_running()
