"""Turn checked config values into the `Config` tree, applying the rules between keys.

Here live the upstream presets (kerio, generic), credential inheritance, default ports and
TLS modes, path resolution and the cross-field rules: clear text only on loopback, listening
beyond loopback only when allowed, encryption at rest not yet available.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .model import (
    SERVICES,
    Config,
    Endpoint,
    FolderSync,
    ListenConfig,
    LoggingConfig,
    SecurityConfig,
    SyncConfig,
    UpstreamConfig,
)
from .schema import (
    DEFAULT_PORTS,
    DEFAULT_TLS,
    REQUIRED_SERVICES,
    SIEVE_PORT,
    UPSTREAM,
    URL_SERVICES,
    default_data_dir,
    is_loopback,
)

AddProblem = Callable[[str, str], None]
Values = dict[str, Any]

_CLEAR_TEXT = "accepted only for a loopback host (localhost, 127.0.0.0/8, ::1)"


def build_config(values: Values, source: Path | None, add: AddProblem) -> Config | None:
    """The `Config` for checked `values`; None if a rule failed (each reported via `add`)."""
    base = source.parent if source is not None else Path.cwd()
    listen, security = values["listen"], values["security"]
    if not is_loopback(listen["host"]) and not security["allow_remote"]:
        add(
            "listen.host",
            f"listening beyond this machine exposes the mailbox (host {listen['host']!r}); "
            "set security.allow_remote: true if you mean it",
        )
    if security["encryption"] == "on":
        add(
            "security.encryption",
            "encryption at rest is not available in this version; set security.encryption: off",
        )
    if security["max_json_bytes"] > security["max_request_bytes"]:
        add(
            "security.max_json_bytes",
            "must not exceed security.max_request_bytes "
            f"({security['max_json_bytes']} > {security['max_request_bytes']})",
        )
    upstream = _upstream(values["upstream"], base, add)
    data_dir = values["data_dir"]
    log_file = values["logging"]["file"]
    sync = values["sync"]
    folders = {name: FolderSync(**entry) for name, entry in sync["folders"].items()}
    if values["upstream"] is not None and upstream is None:
        return None
    return Config(
        listen=ListenConfig(**listen),
        data_dir=_path(data_dir, base) if data_dir is not None else default_data_dir(),
        upstream=upstream,
        sync=SyncConfig(**{**sync, "folders": MappingProxyType(folders)}),
        security=SecurityConfig(**security),
        logging=LoggingConfig(
            level=values["logging"]["level"],
            file=_path(log_file, base) if log_file is not None else None,
        ),
        source=source,
    )


def _path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _ca_file(key: str, value: str | None, base: Path, add: AddProblem) -> str | None:
    """The absolute path of a `ca_file`, once it has been read as PEM certificates."""
    if value is None:
        return None
    path = _path(value, base)
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (OSError, ssl.SSLError, ValueError) as exc:
        add(key, f"cannot read trusted certificates from {path}: {exc}")
    return str(path)


def _upstream(up: Values | None, base: Path, add: AddProblem) -> UpstreamConfig | None:
    if up is None:
        return None
    _exclusive(up, "upstream", add)
    ca_file = _ca_file("upstream.ca_file", up["ca_file"], base, add)
    preset, server = up["preset"], up["server"]
    if preset == "kerio" and server is None:
        add("upstream.server", "required by preset 'kerio': the Kerio Connect host name")
    if preset == "generic" and server is not None:
        add(
            "upstream.server",
            "only used by preset 'kerio'; with preset 'generic' give upstream.imap.host, "
            "upstream.smtp.host and the other endpoints instead",
        )
    # Preset generic with neither imap nor smtp but caldav and/or carddav: calendars and
    # contacts only, no mail.
    dav_only = (
        preset == "generic"
        and up["imap"] is None
        and up["smtp"] is None
        and (up["caldav"] is not None or up["carddav"] is not None)
    )
    found = {
        service: _endpoint(service, up, add, dav_only, base=base, ca_file=ca_file)
        for service in SERVICES
    }
    imap, smtp = found["imap"], found["smtp"]
    if dav_only:
        if found["caldav"] is None and found["carddav"] is None:
            return None
    elif imap is None or smtp is None:
        return None
    return UpstreamConfig(
        preset=preset,
        server=server,
        imap=imap,
        smtp=smtp,
        caldav=found["caldav"],
        carddav=found["carddav"],
        sieve=found["sieve"],
    )


def _exclusive(section: Values, key: str, add: AddProblem) -> None:
    if section["password"] is not None and section["password_command"] is not None:
        add(f"{key}.password", "set either password or password_command, not both")


def _empty_section(service: str) -> Values:
    spec = UPSTREAM.get(service)
    assert spec is not None and spec.section is not None
    return {s.name: s.default for s in spec.section.specs}


def _endpoint(
    service: str,
    up: Values,
    add: AddProblem,
    dav_only: bool = False,
    *,
    base: Path,
    ca_file: str | None,
) -> Endpoint | None:
    """One service after preset expansion; None if unused or broken (then reported)."""
    key = f"upstream.{service}"
    own: Values | None = up[service]
    kerio = up["preset"] == "kerio"
    if own is None:
        if not kerio:
            if service in REQUIRED_SERVICES and not dav_only:
                add(key, f"missing: preset 'generic' needs the {service} endpoint ({key}.host)")
            return None
        own = _empty_section(service)
    _exclusive(own, key, add)
    if not own.get("enabled", True):
        return None
    find = _url_address if service in URL_SERVICES else _host_address
    address = find(service, own, up, add)
    username = own["username"] or up["username"]
    if username is None:
        add(
            "upstream.username",
            "missing: the login name, shared by all services "
            "(or set upstream.<service>.username in each)",
        )
    if address is None or username is None:
        return None
    host, port, url, tls = address
    has_own_secret = own["password"] is not None or own["password_command"] is not None
    secrets = own if has_own_secret else up
    verify = own["verify_tls"]
    return Endpoint(
        service=service,
        host=host,
        port=port,
        url=url,
        tls=tls,
        username=username,
        password=secrets["password"],
        password_command=secrets["password_command"],
        verify_tls=up["verify_tls"] if verify is None else verify,
        saves_sent=bool(own.get("saves_sent", False)),
        ca_file=ca_file
        if own["ca_file"] is None
        else _ca_file(f"upstream.{service}.ca_file", own["ca_file"], base, add),
    )


Address = tuple[str, int, str | None, str]


def _host_address(service: str, own: Values, up: Values, add: AddProblem) -> Address | None:
    key = f"upstream.{service}"
    host = own["host"] or (up["server"] if up["preset"] == "kerio" else None)
    if host is None:
        if up["preset"] != "kerio":  # with kerio, the missing upstream.server is reported
            add(f"{key}.host", f"missing: the {service} server host name")
        return None
    tls = own["tls"] or DEFAULT_TLS[service]
    port = own["port"] or (SIEVE_PORT if service == "sieve" else DEFAULT_PORTS[service, tls])
    if tls == "none" and not is_loopback(host):
        add(
            f"{key}.tls",
            f"none (clear text) is {_CLEAR_TEXT}, not {host!r}; use implicit or starttls",
        )
        return None
    return host, port, None, tls


def _url_address(service: str, own: Values, up: Values, add: AddProblem) -> Address | None:
    key = f"upstream.{service}"
    url, server = own["url"], up["server"]
    if url is None and up["preset"] == "kerio":
        if server is None:
            return None  # reported as the missing upstream.server
        netloc = f"[{server}]" if ":" in server else server
        url = f"https://{netloc}/.well-known/{service}"
    if url is None:
        add(f"{key}.url", f"missing: the {service} base URL, e.g. https://dav.example.com/")
        return None
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "https"
    host = parts.hostname or ""
    tls = own["tls"] or ("implicit" if secure else "none")
    if tls != ("implicit" if secure else "none"):
        add(
            f"{key}.tls",
            f"{tls} does not fit a {parts.scheme}:// URL; use an https:// URL (tls: implicit) "
            "or, on a loopback host only, http:// (tls: none)",
        )
        return None
    if not secure and not is_loopback(host):
        add(f"{key}.url", f"http:// (clear text) is {_CLEAR_TEXT}, not {host!r}; use https://")
        return None
    return host, parts.port or (443 if secure else 80), url, tls
