"""The configuration schema: every key with its type, default and meaning.

The specs below are the single source of truth: the loader validates against them and
fills in their defaults, `schema_doc()` renders them as the reference, and the frozen
dataclasses of `model` (whose field names match the specs; a test checks it) are what the
rest of the program reads.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs

from .model import SERVICES

Kind = Literal["str", "int", "bool", "choice", "path", "host", "url", "hosts", "section", "map"]


@dataclass(frozen=True)
class Spec:
    """One key: `section` holds the sub-keys of a "section" or of each "map" entry."""

    name: str
    kind: Kind
    doc: str
    default: object = None
    nullable: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    secret: bool = False
    section: Section | None = None
    default_doc: str | None = None


@dataclass(frozen=True)
class Section:
    doc: str
    specs: tuple[Spec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.specs)

    def get(self, name: str) -> Spec | None:
        return next((spec for spec in self.specs if spec.name == name), None)


TLS_MODES = ("implicit", "starttls", "none")
URL_SERVICES = frozenset({"caldav", "carddav"})
REQUIRED_SERVICES = frozenset({"imap", "smtp"})
DEFAULT_TLS = {"imap": "implicit", "smtp": "starttls", "sieve": "starttls"}
DEFAULT_PORTS = {
    ("imap", "implicit"): 993,
    ("imap", "starttls"): 143,
    ("imap", "none"): 143,
    ("smtp", "implicit"): 465,
    ("smtp", "starttls"): 587,
    ("smtp", "none"): 587,
}
SIEVE_PORT = 4190

# Keys that were renamed: old dotted key -> new dotted key ("*" stands for a folder name).
RENAMED = {
    "listen.address": "listen.host",
    "sync.window": "sync.window_days",
    "sync.folders.*.max_attachment_bytes": "sync.folders.<folder>.max_message_bytes",
}

_SERVICE_DOCS = {
    "imap": "IMAP: mail folders and messages.",
    "smtp": "SMTP submission: sending mail.",
    "caldav": "CalDAV: calendars and tasks.",
    "carddav": "CardDAV: address books.",
    "sieve": "ManageSieve: server-side filter rules.",
}


def _endpoint_section(service: str) -> Section:
    specs: list[Spec] = []
    if service in URL_SERVICES:
        specs.append(
            Spec(
                "url",
                "url",
                f"Base URL of the {service} service. Preset kerio: "
                f"https://SERVER/.well-known/{service}; preset generic: required if the "
                "section is given.",
                nullable=True,
            )
        )
        tls_default = "from the URL scheme: https -> implicit, http -> none"
    else:
        port_doc = {
            "imap": "993 with tls implicit, else 143",
            "smtp": "465 with tls implicit, else 587",
            "sieve": str(SIEVE_PORT),
        }[service]
        specs += [
            Spec(
                "host",
                "host",
                "Server host name or IP address. Preset kerio: upstream.server; "
                "preset generic: required.",
                nullable=True,
            ),
            Spec(
                "port",
                "int",
                "TCP port.",
                nullable=True,
                minimum=1,
                maximum=65535,
                default_doc=port_doc,
            ),
        ]
        tls_default = DEFAULT_TLS[service]
    specs += [
        Spec(
            "tls",
            "choice",
            (
                "Must fit the URL: implicit for https://, none for http:// (loopback only)."
                if service in URL_SERVICES
                else "implicit: TLS from the first byte; starttls: upgrade after connecting; "
                "none: clear text, accepted only for a loopback host."
            ),
            nullable=True,
            choices=TLS_MODES,
            default_doc=tls_default,
        ),
        Spec("username", "str", "Login name.", nullable=True, default_doc="upstream.username"),
        Spec(
            "password",
            "str",
            "Password. Prefer password_command. If neither password nor "
            "password_command is set here, both are taken from the upstream section.",
            nullable=True,
            secret=True,
            default_doc="upstream.password",
        ),
        Spec(
            "password_command",
            "str",
            "Command whose first line of output is the password. Not together with password.",
            nullable=True,
            default_doc="upstream.password_command",
        ),
        Spec(
            "verify_tls",
            "bool",
            "Check the server certificate and host name.",
            nullable=True,
            default_doc="upstream.verify_tls",
        ),
        Spec(
            "ca_file",
            "path",
            "PEM file of certificates to trust besides the system's.",
            nullable=True,
            default_doc="upstream.ca_file",
        ),
    ]
    if service == "smtp":
        specs.append(
            Spec(
                "saves_sent",
                "bool",
                "true: the server files a copy of each submitted message in the Sent folder "
                "itself, so the bridge does not upload one; false: the bridge APPENDs the copy.",
                False,
            )
        )
    if service not in REQUIRED_SERVICES:
        specs.append(
            Spec("enabled", "bool", "false turns the service off even if the preset has it.", True)
        )
    return Section(_SERVICE_DOCS[service], tuple(specs))


LISTEN = Section(
    "Where the HTTP server (REST API, WebDAV, status page) listens.",
    (
        Spec(
            "host",
            "host",
            "Address to listen on. A non-loopback address also needs security.allow_remote: true.",
            "127.0.0.1",
        ),
        Spec(
            "port",
            "int",
            "TCP port; 0 lets the OS pick a free one.",
            1430,
            minimum=0,
            maximum=65535,
        ),
    ),
)

UPSTREAM = Section(
    "The groupware server to mirror. Absent or null: local-only mode, no sync.",
    (
        Spec(
            "preset",
            "choice",
            "kerio: every endpoint derived from upstream.server (Kerio Connect); "
            "generic: imap and smtp given explicitly, caldav/carddav/sieve optional.",
            "generic",
            choices=("kerio", "generic"),
        ),
        Spec("server", "host", "Server host name, used by preset kerio.", nullable=True),
        Spec("username", "str", "Login name shared by all services.", nullable=True),
        Spec(
            "password",
            "str",
            "Password shared by all services. Prefer password_command.",
            nullable=True,
            secret=True,
        ),
        Spec(
            "password_command",
            "str",
            "Command printing the password shared by all services (first line of output), "
            "e.g. 'pass show mail/kerio'. Not together with password.",
            nullable=True,
        ),
        Spec("verify_tls", "bool", "Default of verify_tls for every service.", True),
        Spec(
            "ca_file",
            "path",
            "PEM file of certificates every service trusts besides the system's: a private "
            "certificate authority's, or the server's own self-signed certificate (what a "
            "fresh Kerio Connect has), so that verify_tls can stay on.",
            nullable=True,
        ),
        *(
            Spec(
                service,
                "section",
                _SERVICE_DOCS[service],
                nullable=True,
                section=_endpoint_section(service),
            )
            for service in SERVICES
        ),
    ),
)

SYNC_MODES = ("full", "headers", "off")
_MODE_DOC = (
    "full: whole messages with their attachments; headers: the headers (and the body "
    "structure) only, bodies fetched on demand; off: the folder is listed but not pulled."
)
_WINDOW_DOC = (
    "Messages newer than this many days are pulled in full, older ones as headers only "
    "(bodies on demand)"
)
_MAX_MESSAGE_DOC = (
    "Messages larger than this many bytes are stored with their headers and text body "
    "only; attachments and the raw source are fetched on demand"
)

FOLDER = Section(
    "Sync settings for one folder, keyed by its path: the server's mailbox name (INBOX, "
    "Archive/2023) or the folder's path in the store (Junk E-mail).",
    (
        Spec(
            "mode",
            "choice",
            _MODE_DOC,
            nullable=True,
            choices=SYNC_MODES,
            default_doc="sync.mode",
        ),
        Spec(
            "window_days",
            "int",
            _WINDOW_DOC + ".",
            nullable=True,
            minimum=1,
            default_doc="sync.window_days",
        ),
        Spec(
            "max_message_bytes",
            "int",
            _MAX_MESSAGE_DOC + ".",
            nullable=True,
            minimum=1,
            default_doc="sync.max_message_bytes",
        ),
    ),
)

SYNC = Section(
    "How and when the cache is reconciled with the upstream.",
    (
        Spec("interval", "int", "Seconds between polls when push is unavailable.", 300, minimum=10),
        Spec(
            "mode",
            "choice",
            "Default mode of every folder. " + _MODE_DOC,
            "full",
            choices=SYNC_MODES,
        ),
        Spec(
            "window_days",
            "int",
            _WINDOW_DOC + "; null: every message in full.",
            nullable=True,
            minimum=1,
        ),
        Spec(
            "max_message_bytes",
            "int",
            _MAX_MESSAGE_DOC + "; null: no limit.",
            nullable=True,
            minimum=1,
        ),
        Spec(
            "conflict_policy",
            "choice",
            "What to do with an item changed on both sides. keep-both: the upstream version "
            "wins in place and the local one is kept in Sync Issues/Conflicts, linked to the "
            "winner; server-wins: the upstream version wins, no copy; local-wins: the local "
            "version is pushed over the upstream one; newer-wins: the later of the local "
            "change and the moment the upstream change was observed wins.",
            "keep-both",
            choices=("keep-both", "server-wins", "local-wins", "newer-wins"),
        ),
        Spec(
            "calendar_window_days",
            "int",
            "CalDAV: events whose last occurrence ended more than this many days ago are not "
            "pulled (open-ended recurring events always are); null: every event.",
            nullable=True,
            minimum=0,
        ),
        Spec("folders", "map", "Per-folder settings, keyed by folder path.", section=FOLDER),
    ),
)

SECURITY = Section(
    "Local access rules and limits.",
    (
        Spec(
            "encryption",
            "choice",
            "Encryption at rest of the cache. Not available in this version: must be off.",
            "off",
            choices=("off", "on"),
        ),
        Spec(
            "passphrase_command",
            "str",
            "Command printing the cache passphrase (used with encryption).",
            nullable=True,
        ),
        Spec(
            "allowed_hosts",
            "hosts",
            "Extra Host header names accepted besides loopback names (DNS rebinding guard).",
            (),
        ),
        Spec(
            "allow_remote",
            "bool",
            "Allow listen.host to be a non-loopback address. This exposes the mailbox.",
            False,
        ),
        Spec("max_request_bytes", "int", "Largest request body accepted.", 64 * 2**20, minimum=1),
        Spec("max_json_bytes", "int", "Largest JSON request body accepted.", 16 * 2**20, minimum=1),
    ),
)

LOGGING = Section(
    "Log output. Passwords and tokens are never logged.",
    (
        Spec(
            "level",
            "choice",
            "Least severe level written.",
            "info",
            choices=("debug", "info", "warning", "error"),
        ),
        Spec("file", "path", "Log file; null: standard error.", nullable=True),
    ),
)

ROOT = Section(
    "kbridge configuration. Relative paths are taken from the config file's directory.",
    (
        Spec("listen", "section", LISTEN.doc, section=LISTEN),
        Spec(
            "data_dir",
            "path",
            "Where the cache, tokens and state live.",
            nullable=True,
            default_doc="the per-user data directory of the platform (e.g. ~/.local/share/kbridge)",
        ),
        Spec("upstream", "section", UPSTREAM.doc, nullable=True, section=UPSTREAM),
        Spec("sync", "section", SYNC.doc, section=SYNC),
        Spec("security", "section", SECURITY.doc, section=SECURITY),
        Spec("logging", "section", LOGGING.doc, section=LOGGING),
    ),
)


def lookup(dotted: str) -> Spec | None:
    """The spec of a dotted key (a folder name counts as one part), or None."""
    section: Section | None = ROOT
    spec: Spec | None = None
    parts = dotted.split(".")
    i = 0
    while i < len(parts):
        if section is None:
            return None
        spec = section.get(parts[i])
        if spec is None:
            return None
        if spec.kind == "map":
            i += 1  # the folder name
        section = spec.section
        i += 1
    return spec


_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")


def is_host(value: str) -> bool:
    """A DNS host name or a bare IPv4/IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return len(value) <= 253 and _HOSTNAME.match(value) is not None
    return True


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (IPv6 literals may be bracketed)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("kbridge", appauthor=False))


def describe(spec: Spec) -> str:
    """What a value of this key must be, as a phrase: "an integer from 0 to 65535"."""
    if spec.kind == "int":
        text = "an integer"
        if spec.minimum is not None and spec.maximum is not None:
            text += f" from {spec.minimum} to {spec.maximum}"
        elif spec.minimum is not None:
            text += f" >= {spec.minimum}"
    else:
        text = {
            "str": "a string",
            "bool": "true or false",
            "choice": "one of " + ", ".join(spec.choices),
            "path": "a file system path",
            "host": "a host name or IP address",
            "url": "an http:// or https:// URL",
            "hosts": "a list of host names",
            "section": "a mapping",
            "map": "a mapping of folder paths to settings",
        }[spec.kind]
    return text
