"""The configuration schema and loader: defaults, every problem kind, presets, overrides."""

from __future__ import annotations

import base64
import dataclasses
import ssl
import textwrap
from pathlib import Path

import pytest
import yaml

from bridge.config import (
    Config,
    ConfigError,
    Endpoint,
    Problem,
    check_file,
    default_data_dir,
    is_loopback,
    load_config,
    model,
    schema_doc,
)
from bridge.config.schema import ROOT, UPSTREAM, Section

# A self-signed certificate (CN=kbridge test, EC P-256, valid 2026-2036): what a ca_file holds.
_SELF_SIGNED_DER = base64.b64decode(
    "MIIBhDCCASmgAwIBAgIUD3VLQ+w2w/qAUHI8ZWhQNMCyB30wCgYIKoZIzj0EAwIwFzEVMBMGA1UEAwwMa2JyaWRn"
    "ZSB0ZXN0MB4XDTI2MTEyNzA4MjA0NVoXDTM2MTEyNDA4MjA0NVowFzEVMBMGA1UEAwwMa2JyaWRnZSB0ZXN0MFkw"
    "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4+MQ55xGvj11ootIMFZctRjLfqDyl6oCoWtzkJ8A56tjsE5catoFKw40"
    "dhV+z8+x20xauDGecKVHAam9usu176NTMFEwHQYDVR0OBBYEFDybNBaaZxJvnwZG9SJCUh7UyE98MB8GA1UdIwQY"
    "MBaAFDybNBaaZxJvnwZG9SJCUh7UyE98MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAMHwlfvh"
    "O4Qz/3BlVDFx4JcBbYpdPBFTUyHjZtWPqW8rAiEAhDbToWNEX4/162hw+3eykFgUkhQWEQ1Nuv+ZCIYej1c="
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "bridge.example.yaml"

KERIO = """
upstream:
  preset: kerio
  server: mail.example.com
  username: jane@example.com
  password_command: pass show mail/kerio
"""


def write(tmp_path: Path, text: str, name: str = "bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[Problem]:
    return check_file(write(tmp_path, text))


def by_key(found: list[Problem]) -> dict[str, str]:
    return {p.key: p.message for p in found}


# -- defaults and the example ------------------------------------------------------------


def test_defaults_without_a_file() -> None:
    config = load_config()
    assert config.source is None
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 1430)
    assert config.data_dir == default_data_dir()
    assert config.data_dir.name == "kbridge"
    assert config.upstream is None
    assert config.sync.interval == 300
    assert config.sync.window_days is None
    assert config.sync.conflict_policy == "keep-both"
    assert dict(config.sync.folders) == {}
    assert config.security.encryption == "off"
    assert config.security.allowed_hosts == ()
    assert config.security.allow_remote is False
    assert config.security.max_request_bytes == 64 * 2**20
    assert config.security.max_json_bytes == 16 * 2**20
    assert (config.logging.level, config.logging.file) == ("info", None)


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.listen.port = 1  # type: ignore[misc]


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.listen.port == 1430
    assert config.source == tmp_path / "bridge.yaml"


def test_example_file_passes() -> None:
    assert check_file(EXAMPLE) == []
    config = load_config(EXAMPLE)
    assert config.upstream is not None
    assert set(config.upstream.endpoints()) == {"imap", "smtp", "caldav", "carddav", "sieve"}
    assert config.sync.folder("Junk E-mail").mode == "off"


def test_example_generic_block_passes(tmp_path: Path) -> None:
    """The commented-out generic endpoints in the example are themselves a valid upstream."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if "preset generic (" in line) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        block.append("  " + line[len("  # ") :])
    config = load_config(write(tmp_path, "upstream:\n" + "\n".join(block) + "\n"))
    assert config.upstream is not None
    assert config.upstream.preset == "generic"
    assert config.upstream.imap.host == "imap.example.com"
    assert config.upstream.carddav is not None
    assert config.upstream.carddav.password_command == "pass show mail/dav"
    assert config.upstream.caldav is not None
    assert config.upstream.caldav.password_command == "pass show mail/imap"


def _leaf_keys(section: Section, prefix: str = "") -> list[str]:
    keys = []
    for spec in section.specs:
        if spec.section is not None:
            keys += _leaf_keys(spec.section, f"{prefix}{spec.name}.")
        else:
            keys.append(prefix + spec.name)
    return keys


def test_example_and_reference_cover_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    doc = schema_doc()
    for key in _leaf_keys(ROOT):
        assert f"{key.rsplit('.', 1)[-1]}:" in text, key
        shown = key.replace("sync.folders.", "sync.folders.<folder>.")
        assert f"`{shown}`" in doc, key


@pytest.mark.parametrize(
    ("cls", "section"),
    [
        (model.ListenConfig, ROOT.get("listen")),
        (model.SecurityConfig, ROOT.get("security")),
        (model.LoggingConfig, ROOT.get("logging")),
        (model.SyncConfig, ROOT.get("sync")),
        (model.FolderSync, ROOT.get("sync").section.get("folders")),  # type: ignore[union-attr]
    ],
)
def test_dataclasses_match_the_schema(cls: type, section: object) -> None:
    assert section is not None
    names = {f.name for f in dataclasses.fields(cls)}
    assert names == set(section.section.names)  # type: ignore[attr-defined]


def test_top_level_matches_the_schema() -> None:
    names = {f.name for f in dataclasses.fields(Config)} - {"source"}
    assert names == set(ROOT.names)
    up = {f.name for f in dataclasses.fields(model.UpstreamConfig)}
    assert up == {"preset", "server", *model.SERVICES}
    assert set(model.SERVICES) <= set(UPSTREAM.names)


# -- problems ------------------------------------------------------------------------------


def test_problem_and_error_text() -> None:
    problem = Problem("bridge.yaml", "upstream.imap.tls", "must be one of x")
    assert str(problem) == "bridge.yaml: upstream.imap.tls: must be one of x"
    assert str(Problem(None, "", "boom")) == "boom"
    error = ConfigError([problem, Problem(None, "listen.port", "bad")])
    assert str(error).splitlines() == [str(problem), "listen.port: bad"]


def test_bad_choice_names_file_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, KERIO + "  imap:\n    tls: ssl\n")
    [problem] = check_file(path)
    assert problem.file == str(path)
    assert problem.key == "upstream.imap.tls"
    assert str(problem) == (
        f"{path}: upstream.imap.tls: must be one of implicit, starttls, none (got 'ssl')"
    )


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("listen: {port: high}", "listen.port", "must be an integer from 0 to 65535 (got 'high')"),
        ("listen: {port: 70000}", "listen.port", "(got 70000)"),
        ("listen: {port: true}", "listen.port", "must be an integer"),
        ("listen: {host: 'http://x'}", "listen.host", "without a scheme"),
        ("listen: {host: 'x:80'}", "listen.host", "under 'port'"),
        ("listen: [1, 2]", "listen", "must be a mapping"),
        ("sync: {interval: 5}", "sync.interval", "must be an integer >= 10 (got 5)"),
        ("sync: {conflict_policy: mine}", "sync.conflict_policy", "keep-both, server-wins"),
        ("sync: {folders: {INBOX: {mode: some}}}", "sync.folders.INBOX.mode", "full, headers"),
        ("sync: {folders: [INBOX]}", "sync.folders", "must be a mapping"),
        ("security: {allow_remote: 'yes'}", "security.allow_remote", "must be true or false"),
        ("security: {allowed_hosts: 'a.b'}", "security.allowed_hosts", "list of host names"),
        ("security: {max_json_bytes: 0}", "security.max_json_bytes", ">= 1"),
        ("logging: {level: loud}", "logging.level", "debug, info, warning, error"),
        ("logging: {file: 3}", "logging.file", "must be a file system path"),
        ("data_dir: ''", "data_dir", "must be a file system path"),
        ("listen: {port: null}", "listen.port", "(got null)"),
        ("sync: {intervall: 60}", "sync.intervall", "did you mean 'interval'?"),
        ("sync: {colour: red}", "sync.colour", "unknown key 'colour' in 'sync'; known keys:"),
        ("bogus: 1", "bogus", "unknown key 'bogus' at the top level"),
        ("listen: {address: 0.0.0.0}", "listen.address", "renamed: use 'listen.host'"),
        ("sync: {window: 30}", "sync.window", "renamed: use 'sync.window_days'"),
    ],
)
def test_problem_kinds(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    path = write(tmp_path, text)
    found = check_file(path)
    assert [p.key for p in found] == [key]
    assert fragment in found[0].message
    assert found[0].file == str(path)


def test_unknown_key_lists_known_keys(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "logging: {lvl: info}")
    assert problem.message.startswith("unknown key 'lvl' in 'logging'; known keys: level, file")


def test_many_problems_are_collected_at_once(tmp_path: Path) -> None:
    text = """
    listen: {host: 0.0.0.0, port: -1}
    sync: {interval: 1, conflict_policy: mine, extra: 1}
    security: {encryption: on}
    logging: {level: loud}
    upstream:
      preset: generic
      username: jane
      imap: {host: mail.example.com, tls: none}
    """
    found = problems(tmp_path, text)
    assert sorted(p.key for p in found) == [
        "listen.host",
        "listen.port",
        "logging.level",
        "security.encryption",
        "sync.conflict_policy",
        "sync.extra",
        "sync.interval",
        "upstream.imap.tls",
        "upstream.smtp",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "bridge.yaml")
    assert len(info.value.problems) == 9
    assert len(str(info.value).splitlines()) == 9


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "listen:\n  host: 127.0.0.1\n  port: [1430\nsync: {}\n")
    assert problem.key == ""
    assert problem.message.startswith("YAML syntax error at line 4, column ")
    [tab] = problems(tmp_path, "listen:\n\tport: 1\n")
    assert "line 2" in tab.message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "- listen\n- sync\n")
    assert "top level must be a mapping" in problem.message
    assert "got a list" in problem.message


def test_missing_file(tmp_path: Path) -> None:
    [problem] = check_file(tmp_path / "nope.yaml")
    assert problem.file == str(tmp_path / "nope.yaml")
    assert "file not found" in problem.message


# -- upstream -------------------------------------------------------------------------------


def test_kerio_preset_fills_every_endpoint(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, KERIO))
    up = config.upstream
    assert up is not None
    assert (up.imap.host, up.imap.port, up.imap.tls) == ("mail.example.com", 993, "implicit")
    assert (up.smtp.host, up.smtp.port, up.smtp.tls) == ("mail.example.com", 587, "starttls")
    assert up.sieve is not None
    assert (up.sieve.host, up.sieve.port, up.sieve.tls) == ("mail.example.com", 4190, "starttls")
    assert up.caldav is not None and up.carddav is not None
    assert up.caldav.url == "https://mail.example.com/.well-known/caldav"
    assert up.carddav.url == "https://mail.example.com/.well-known/carddav"
    assert (up.caldav.host, up.caldav.port, up.caldav.tls) == ("mail.example.com", 443, "implicit")
    for endpoint in up.endpoints().values():
        assert endpoint.username == "jane@example.com"
        assert endpoint.password_command == "pass show mail/kerio"
        assert endpoint.password is None
        assert endpoint.verify_tls is True


def test_kerio_preset_explicit_values_override(tmp_path: Path) -> None:
    text = KERIO + textwrap.indent(
        textwrap.dedent("""
        verify_tls: false
        imap: {host: imap.example.com, tls: starttls}
        smtp: {port: 2525, username: relay, password: s3cret-smtp}
        caldav: {url: "https://dav.example.com/cal/", verify_tls: true}
        carddav: {enabled: false}
        sieve: {enabled: false}
        """),
        "  ",
    )
    up = load_config(write(tmp_path, text)).upstream
    assert up is not None
    assert (up.imap.host, up.imap.port, up.imap.tls) == ("imap.example.com", 143, "starttls")
    assert up.imap.verify_tls is False
    assert (up.smtp.host, up.smtp.port) == ("mail.example.com", 2525)
    assert (up.smtp.username, up.smtp.password, up.smtp.password_command) == (
        "relay",
        "s3cret-smtp",
        None,
    )
    assert up.caldav is not None
    assert up.caldav.url == "https://dav.example.com/cal/"
    assert up.caldav.verify_tls is True
    assert up.carddav is None and up.sieve is None
    assert set(up.endpoints()) == {"imap", "smtp", "caldav"}


def test_ca_file_is_inherited_read_and_taken_from_the_config_s_directory(tmp_path: Path) -> None:
    pems = tmp_path / "pems"
    pems.mkdir()
    (pems / "kerio.pem").write_text(ssl.DER_cert_to_PEM_cert(_SELF_SIGNED_DER))
    (pems / "dav.pem").write_bytes((pems / "kerio.pem").read_bytes())
    text = KERIO + "  ca_file: pems/kerio.pem\n  caldav: {ca_file: pems/dav.pem}\n"
    up = load_config(write(tmp_path, text)).upstream
    assert up is not None
    assert up.imap.ca_file == up.smtp.ca_file == str((pems / "kerio.pem").resolve())
    assert up.caldav is not None and up.caldav.ca_file == str((pems / "dav.pem").resolve())
    assert up.imap.verify_tls is True
    plain = load_config(write(tmp_path, KERIO, "plain.yaml")).upstream
    assert plain is not None and plain.imap.ca_file is None


def test_a_ca_file_that_is_not_certificates_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    text = KERIO + "  ca_file: junk.pem\n  imap: {ca_file: missing.pem}\n"
    found = by_key(problems(tmp_path, text))
    assert set(found) == {"upstream.ca_file", "upstream.imap.ca_file"}
    assert "cannot read trusted certificates from" in found["upstream.ca_file"]
    assert "missing.pem" in found["upstream.imap.ca_file"]


def test_kerio_needs_server_and_username(tmp_path: Path) -> None:
    found = by_key(problems(tmp_path, "upstream: {preset: kerio}"))
    assert set(found) == {"upstream.server", "upstream.username"}
    assert "required by preset 'kerio'" in found["upstream.server"]


def test_generic_requires_imap_and_smtp(tmp_path: Path) -> None:
    found = by_key(problems(tmp_path, "upstream: {username: jane}"))
    assert set(found) == {"upstream.imap", "upstream.smtp"}
    assert "preset 'generic' needs the imap endpoint" in found["upstream.imap"]
    found = by_key(problems(tmp_path, "upstream: {username: jane, imap: {port: 993}, smtp: {}}"))
    assert set(found) == {"upstream.imap.host", "upstream.smtp.host"}
    found = by_key(problems(tmp_path, "upstream: {server: mail.example.com}"))
    assert "only used by preset 'kerio'" in found["upstream.server"]


def test_generic_endpoints(tmp_path: Path) -> None:
    text = """
    upstream:
      username: jane
      password: top-secret
      imap: {host: imap.example.com}
      smtp: {host: smtp.example.com, tls: implicit}
      carddav: {url: "https://dav.example.com/", password_command: "pass show dav"}
    """
    up = load_config(write(tmp_path, text)).upstream
    assert up is not None
    assert (up.imap.port, up.imap.tls, up.imap.password) == (993, "implicit", "top-secret")
    assert (up.smtp.port, up.smtp.tls) == (465, "implicit")
    assert up.caldav is None and up.sieve is None
    assert up.carddav is not None
    assert (up.carddav.password, up.carddav.password_command) == (None, "pass show dav")
    found = by_key(
        problems(tmp_path, text.replace("carddav: {url", "caldav: {x: 1}\n      cd: {u"))
    )
    assert set(found) == {"upstream.caldav.x", "upstream.caldav.url", "upstream.cd"}
    assert "did you mean 'cd" not in found["upstream.cd"]
    found = by_key(problems(tmp_path, text.rstrip() + "\n      sieve: {}\n"))
    assert set(found) == {"upstream.sieve.host"}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "::1"])
def test_clear_text_allowed_on_loopback(tmp_path: Path, host: str) -> None:
    text = f"""
    upstream:
      username: test
      password: test
      imap: {{host: "{host}", port: 1143, tls: none}}
      smtp: {{host: "{host}", port: 1025, tls: none}}
      caldav: {{url: "http://127.0.0.1:5232/"}}
    """
    up = load_config(write(tmp_path, text)).upstream
    assert up is not None
    assert (up.imap.host, up.imap.port, up.imap.tls) == (host, 1143, "none")
    assert up.caldav is not None
    assert (up.caldav.tls, up.caldav.port) == ("none", 5232)


def test_clear_text_refused_beyond_loopback(tmp_path: Path) -> None:
    text = """
    upstream:
      username: test
      imap: {host: mail.example.com, tls: none}
      smtp: {host: 10.0.0.1, tls: none}
      caldav: {url: "http://dav.example.com/"}
      carddav: {url: "https://dav.example.com/", tls: none}
    """
    found = by_key(problems(tmp_path, text))
    assert set(found) == {
        "upstream.imap.tls",
        "upstream.smtp.tls",
        "upstream.caldav.url",
        "upstream.carddav.tls",
    }
    assert "accepted only for a loopback host" in found["upstream.imap.tls"]
    assert "'mail.example.com'" in found["upstream.imap.tls"]


def test_password_and_password_command_are_exclusive(tmp_path: Path) -> None:
    text = KERIO + "  password: x\n  imap: {password: y, password_command: z}\n"
    found = by_key(problems(tmp_path, text))
    assert set(found) == {"upstream.password", "upstream.imap.password"}
    assert "not both" in found["upstream.password"]


def test_password_never_shown(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"
    text = f"""
    upstream:
      username: jane
      password: {secret}
      imap: {{host: imap.example.com}}
      smtp: {{host: smtp.example.com, password: {secret}}}
    """
    config = load_config(write(tmp_path, text))
    assert config.upstream is not None
    assert config.upstream.imap.password == secret
    for shown in (repr(config), str(config), repr(config.upstream.smtp), str(config.upstream)):
        assert secret not in shown
    # nor in a problem about it
    bad = text.replace(f"password: {secret}}}", "password: 123456}").replace("jane", "[jane]")
    found = problems(tmp_path, bad)
    assert {p.key for p in found} == {"upstream.smtp.password", "upstream.username"}
    assert all("123456" not in str(p) for p in found)


def test_endpoint_repr_hides_password() -> None:
    endpoint = Endpoint("imap", "h", 993, None, "implicit", "u", "pw-123", None, True)
    assert "pw-123" not in repr(endpoint)


# -- cross-field rules, security -------------------------------------------------------------


def test_encryption_on_is_refused(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "security: {encryption: on}")
    assert problem.key == "security.encryption"
    assert "not available in this version" in problem.message
    assert "set security.encryption: off" in problem.message
    assert load_config(write(tmp_path, "security: {encryption: off}")).security.encryption == "off"
    assert (
        load_config(write(tmp_path, "security: {encryption: 'off'}")).security.encryption == "off"
    )


def test_remote_listen_needs_allow_remote(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "listen: {host: 0.0.0.0}")
    assert problem.key == "listen.host"
    assert "exposes the mailbox" in problem.message
    assert "security.allow_remote: true" in problem.message
    config = load_config(
        write(tmp_path, "listen: {host: 0.0.0.0}\nsecurity: {allow_remote: true}\n")
    )
    assert config.listen.host == "0.0.0.0"
    assert load_config(write(tmp_path, "listen: {host: localhost}")).listen.host == "localhost"


def test_json_limit_not_above_request_limit(tmp_path: Path) -> None:
    text = "security: {max_request_bytes: 1000, max_json_bytes: 2000}"
    assert [p.key for p in problems(tmp_path, text)] == ["security.max_json_bytes"]


def test_allowed_hosts(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "security: {allowed_hosts: [kbridge.local, box]}"))
    assert config.security.allowed_hosts == ("kbridge.local", "box")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("mail.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# -- paths, folders, overrides -----------------------------------------------------------------


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, "data_dir: data\nlogging: {file: logs/kbridge.log}\n")
    config = load_config(path)
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.logging.file == (tmp_path / "logs" / "kbridge.log").resolve()
    home = load_config(write(tmp_path, "data_dir: ~/kb\n")).data_dir
    assert home == (Path.home() / "kb").resolve()


def test_folder_settings(tmp_path: Path) -> None:
    text = """
    sync:
      window_days: 30
      folders:
        INBOX:
        Archive: {mode: headers, window_days: 365, max_message_bytes: 1}
        Junk: {mode: off}
    """
    sync = load_config(write(tmp_path, text)).sync
    assert sync.folder("INBOX").mode == "full"
    assert sync.folder("INBOX").window_days == 30
    assert sync.folder("Archive") == model.FolderSync("headers", 365, 1)
    assert sync.folder("Junk").mode == "off"
    assert sync.folder("Elsewhere") == model.FolderSync("full", 30, None)


def test_folder_settings_fall_back_to_the_sync_defaults(tmp_path: Path) -> None:
    text = """
    sync:
      mode: headers
      window_days: 7
      max_message_bytes: 1000000
      folders:
        inbox: {mode: full}
        Junk E-mail: {mode: off}
        Archive/2023: {window_days: 365}
    """
    sync = load_config(write(tmp_path, text)).sync
    assert sync.folder("INBOX") == model.FolderSync("full", 7, 1000000)
    # a folder is found by its mailbox name or by its path in the store
    assert sync.folder("Junk", "Junk E-mail").mode == "off"
    assert sync.folder("Archive/2023") == model.FolderSync("headers", 365, 1000000)
    assert sync.folder("Other") == model.FolderSync("headers", 7, 1000000)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("sync: {mode: partial}", "sync.mode", "must be one of full, headers, off"),
        ("sync: {folders: {A: {mode: all}}}", "sync.folders.A.mode", "one of full, headers, off"),
        ("sync: {window_days: 0}", "sync.window_days", "an integer >= 1 (got 0)"),
        ("sync: {folders: {A: {window_days: -3}}}", "sync.folders.A.window_days", ">= 1"),
        ("sync: {max_message_bytes: big}", "sync.max_message_bytes", "an integer >= 1"),
        ("sync: {folders: {A: {max_message_bytes: 0}}}", "sync.folders.A.max_message_bytes",
         ">= 1 (got 0)"),
        ("sync: {folders: {A: {max_attachment_bytes: 5}}}",
         "sync.folders.A.max_attachment_bytes", "renamed: use 'sync.folders.<folder>"),
        ("sync: {folders: {A: {mode: headers, windows: 3}}}", "sync.folders.A.windows",
         "did you mean 'window_days'?"),
    ],
)  # fmt: skip
def test_folder_settings_are_checked(tmp_path: Path, text: str, key: str, expected: str) -> None:
    found = by_key(problems(tmp_path, text))
    assert key in found, found
    assert expected in found[key]


def test_overrides(tmp_path: Path) -> None:
    config = load_config(overrides={"listen.port": 0, "data_dir": "/x"})
    assert config.listen.port == 0
    assert config.data_dir == Path("/x").resolve()
    path = write(tmp_path, "listen: {port: 2000}\ndata_dir: from-file\n")
    config = load_config(path, overrides={"listen.port": "2001", "logging.level": "debug"})
    assert config.listen.port == 2001
    assert config.logging.level == "debug"
    assert config.data_dir == (tmp_path / "from-file").resolve()
    relative = load_config(path, overrides={"data_dir": "rel"}).data_dir
    assert relative == (Path.cwd() / "rel").resolve()
    config = load_config(
        overrides={
            "upstream.username": "u",
            "upstream.imap.host": "127.0.0.1",
            "upstream.smtp.host": "localhost",
        }
    )
    assert config.upstream is not None
    assert config.upstream.smtp.host == "localhost"


def test_override_problems_have_no_file(tmp_path: Path) -> None:
    path = write(tmp_path, "sync: {interval: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides={"listen.port": 99999, "listen.nope": 1})
    found = {p.key: p for p in info.value.problems}
    assert set(found) == {"sync.interval", "listen.port", "listen.nope"}
    assert found["sync.interval"].file == str(path)
    assert found["listen.port"].file is None
    assert str(found["listen.port"]).startswith("listen.port: must be an integer")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    found = problems(tmp_path, "listen: !!python/object/apply:os.system ['true']\n")
    assert len(found) == 1
    assert found[0].message.startswith("unsupported YAML at line 1, column 9: ")
    assert yaml.safe_load("a: 1") == {"a": 1}


def test_credentials_in_a_url_are_not_echoed(tmp_path: Path) -> None:
    text = KERIO + '  caldav: {url: "https://jane:pw-in-url@dav.example.com/"}\n'
    [problem] = problems(tmp_path, text)
    assert problem.key == "upstream.caldav.url"
    assert "pw-in-url" not in str(problem)
    assert "username and password_command" in problem.message


def test_bad_item_in_a_list_is_named(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "security: {allowed_hosts: [ok.example, 'not a host']}")
    assert problem.message == "must be a list of host names; 'not a host' is not a host name"


# -- calendars and contacts only -------------------------------------------------------------


def test_caldav_and_carddav_without_mail(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            upstream:
              username: jane
              password: secret
              caldav: {url: "http://127.0.0.1:5232/"}
              carddav: {url: "http://127.0.0.1:5232/"}
            sync:
              calendar_window_days: 90
            """,
        )
    )
    assert config.upstream is not None
    assert config.upstream.imap is None and config.upstream.smtp is None
    assert config.upstream.caldav is not None and config.upstream.caldav.url
    assert config.upstream.carddav is not None and config.upstream.carddav.password == "secret"
    assert config.sync.calendar_window_days == 90


def test_mail_needs_both_imap_and_smtp_even_with_dav(tmp_path: Path) -> None:
    found = by_key(
        problems(
            tmp_path,
            """
            upstream:
              username: jane
              imap: {host: 127.0.0.1, tls: none}
              caldav: {url: "http://127.0.0.1:5232/"}
            """,
        )
    )
    assert "upstream.smtp" in found


def test_dav_only_needs_a_url(tmp_path: Path) -> None:
    found = by_key(problems(tmp_path, "upstream:\n  username: jane\n  caldav: {}\n"))
    assert "upstream.caldav.url" in found
