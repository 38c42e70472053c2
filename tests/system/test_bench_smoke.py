"""bench/bench_store.py runs end to end on a small store (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system
BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_store.py"


def test_bench_store_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--count",
            "500",
            "--raw-count",
            "200",
            "--dir",
            str(tmp_path / "data"),
            "--json",
            str(tmp_path / "bench.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "items/s" in proc.stdout
    assert "raw import (parse + insert)" in proc.stdout
    assert (tmp_path / "bench.json").exists()
