"""The data directory: where the store, the admin token and the running server's address
live, and the lock that keeps one server per data directory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

STORE_FILE = "store.sqlite"
ADMIN_TOKEN_FILE = "admin.token"
SERVER_FILE = "server.json"
LOCK_FILE = "kbridge.lock"


class DataDirLocked(Exception):
    """Another kbridge server already runs on this data directory."""


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[bytes] | None = None

    @property
    def store(self) -> Path:
        return self.path / STORE_FILE

    @property
    def admin_token(self) -> Path:
        return self.path / ADMIN_TOKEN_FILE

    @property
    def server_file(self) -> Path:
        return self.path / SERVER_FILE

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if sys.platform != "win32":
            os.chmod(self.path, 0o700)

    def lock(self) -> None:
        """Take the data-dir lock for the life of the process (released by the OS on exit)."""
        fh = open(self.path / LOCK_FILE, "a+b")  # noqa: SIM115 - held until release()
        try:
            _lock_file(fh)
        except OSError:
            fh.close()
            raise DataDirLocked(
                f"another kbridge server is running on {self.path}; stop it or use --data-dir"
            ) from None
        self._lock = fh

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def write_secret(self, path: Path, text: str) -> None:
        """Write a file readable by the owner only (0600 where the platform has modes)."""
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)

    def write_server_info(self, info: dict[str, Any]) -> None:
        self.server_file.write_text(json.dumps(info), encoding="utf-8")

    def read_server_info(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.server_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def clear_server_info(self) -> None:
        self.server_file.unlink(missing_ok=True)


def _lock_file(fh: IO[bytes]) -> None:
    if sys.platform == "win32":
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
