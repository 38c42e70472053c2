"""Worker processes of the sync: where there is a fork server, a worker starts with the
format converters already imported (it does not spend its first half second on them)."""

from __future__ import annotations

import multiprocessing
import sys
import sysconfig
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from bridge.sync import workers


def _loaded(name: str) -> bool:
    return name in sys.modules


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(),
    reason="this platform has no fork server: workers are spawned",
)
def test_a_worker_has_the_converters_before_its_first_task() -> None:
    workers.warm_up()
    ctx = workers.context()
    assert ctx.get_start_method() == "forkserver"
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(_loaded, "bridge.sync.dav_parse").result(timeout=60)
        assert not pool.submit(_loaded, "bridge.no_such_module").result(timeout=60)


def test_the_fork_server_has_what_the_kbridge_command_s_main_module_imports() -> None:
    """A new worker imports the program's main module again; the `kbridge` command's
    imports `bridge.cli`, which the fork server has then already imported."""
    assert "bridge.cli" in workers.PRELOAD
    script = Path(sysconfig.get_path("scripts")) / "kbridge"
    if script.exists():  # the installed console script: its one import is covered
        imports = [line for line in script.read_text().splitlines() if "import" in line]
        assert any("from bridge.cli import" in line for line in imports)
        assert not [line for line in imports if "bridge" in line and "bridge.cli" not in line]
