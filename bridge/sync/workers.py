"""How the sync starts worker processes (the DAV resource parsers, the mail parser).

Where the platform has it (Linux, macOS), through a fork server: one clean process,
started early and with the format converters already imported, forks each worker in a few
milliseconds, where a spawned worker spends about half a second of CPU importing them,
at the very moment a large pull's data has arrived. The sync process itself is never
forked (it runs threads). Elsewhere (Windows), workers are spawned.

A new worker also imports the program's main module again (that is how multiprocessing
finds a task's function). The `kbridge` command's main module imports `bridge.cli` and
nothing else, so the fork server imports that too: a worker then starts in a few
milliseconds. (Importing every module the sync process has, as an embedding program's
main module may need, would cost the fork server about 25 MB more for as long as the
bridge runs; such a program's workers import what they miss at their start, which the
sync overlaps with the server's work: see `dav_parse.ParserPool`.)
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.context import BaseContext

# What every worker needs, and what the `kbridge` command's main module imports.
PRELOAD = ["bridge.sync.dav_parse", "bridge.sync.parse_pool", "bridge.cli"]


def context() -> BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def warm_up() -> None:
    """Start the fork server now (it imports PRELOAD while the sync waits on the server),
    so that the first workers cost nothing later. Without a fork server: nothing to do."""
    ctx = context()
    if ctx.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    with contextlib.suppress(Exception):  # the workers then start the ordinary way
        forkserver.ensure_running()
