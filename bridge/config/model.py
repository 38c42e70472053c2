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
    ca_file: str | None = None  # certificates trusted besides the system's


@dataclass(frozen=True)
class UpstreamConfig:
    preset: str
    server: str | None
    imap: Endpoint | None  # None (with smtp) when only caldav / carddav are configured
    smtp: Endpoint | None
    caldav: Endpoint | None
    carddav: Endpoint | None
    sieve: Endpoint | None

    def endpoints(self) -> dict[str, Endpoint]:
        """The services in use, by name."""
        found = {name: getattr(self, name) for name in SERVICES}
        return {name: ep for name, ep in found.items() if ep is not None}


@dataclass(frozen=True)
class FolderSync:
    """One folder's sync settings; None: the default of the `sync` section."""

    mode: str | None = "full"  # full | headers | off
    window_days: int | None = None  # older messages: headers only
    max_message_bytes: int | None = None  # larger messages: headers and text only


@dataclass(frozen=True)
class SyncConfig:
    interval: int
    mode: str
    window_days: int | None
    max_message_bytes: int | None
    conflict_policy: str
    folders: Mapping[str, FolderSync]
    calendar_window_days: int | None = None  # CalDAV: events ended longer ago not pulled

    def folder(self, *paths: str) -> FolderSync:
        """Effective settings of a folder known by any of `paths` (its mailbox name, its
        path in the store): the first entry found, the sync defaults filling gaps."""
        own = next((self.folders[p] for p in paths if p in self.folders), None)
        if own is None:
            own = next(
                (
                    entry
                    for name, entry in self.folders.items()
                    if any(name.lower() == p.lower() == "inbox" for p in paths)
                ),
                FolderSync(None),
            )
        return FolderSync(
            own.mode or self.mode,
            self.window_days if own.window_days is None else own.window_days,
            self.max_message_bytes if own.max_message_bytes is None else own.max_message_bytes,
        )


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
