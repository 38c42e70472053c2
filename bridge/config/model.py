"""The configuration as the rest of the program reads it: a frozen dataclass tree.

Field names match the keys of `bridge.config.schema` (a test checks it); the loader builds
these objects only from a configuration that passed every check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("imap", "smtp", "caldav", "carddav", "sieve")


@dataclass(frozen=True)
class ListenConfig:
    host: str
    port: int


@dataclass(frozen=True)
class Endpoint:
    """One upstream service after preset expansion and inheritance."""

    service: str
    host: str
    port: int
    url: str | None
    tls: str
    username: str
    password: str | None = field(repr=False)
    password_command: str | None
    verify_tls: bool
    saves_sent: bool = False  # smtp only: the server files sent mail itself


@dataclass(frozen=True)
class UpstreamConfig:
    preset: str
    server: str | None
    imap: Endpoint
    smtp: Endpoint
    caldav: Endpoint | None
    carddav: Endpoint | None
    sieve: Endpoint | None

    def endpoints(self) -> dict[str, Endpoint]:
        """The services in use, by name."""
        found = {name: getattr(self, name) for name in SERVICES}
        return {name: ep for name, ep in found.items() if ep is not None}


@dataclass(frozen=True)
class FolderSync:
    mode: str
    window_days: int | None
    max_attachment_bytes: int | None


@dataclass(frozen=True)
class SyncConfig:
    interval: int
    window_days: int | None
    conflict_policy: str
    folders: Mapping[str, FolderSync]

    def folder(self, path: str) -> FolderSync:
        """Effective settings of one folder: its own entry, the sync defaults filling gaps."""
        own = self.folders.get(path)
        if own is None:
            return FolderSync("full", self.window_days, None)
        window = self.window_days if own.window_days is None else own.window_days
        return FolderSync(own.mode, window, own.max_attachment_bytes)


@dataclass(frozen=True)
class SecurityConfig:
    encryption: str
    passphrase_command: str | None
    allowed_hosts: tuple[str, ...]
    allow_remote: bool
    max_request_bytes: int
    max_json_bytes: int


@dataclass(frozen=True)
class LoggingConfig:
    level: str
    file: Path | None


@dataclass(frozen=True)
class Config:
    listen: ListenConfig
    data_dir: Path
    upstream: UpstreamConfig | None
    sync: SyncConfig
    security: SecurityConfig
    logging: LoggingConfig
    source: Path | None = None
