"""Read a YAML config file, check it against the schema and build the `Config` tree.

Every problem is collected (syntax, types, values, unknown and renamed keys, missing keys,
cross-field rules) and reported at once in one `ConfigError`, each naming the file and the
dotted key. Overrides (CLI flags, environment) are dotted keys applied after the file.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from yaml.constructor import ConstructorError

from .model import Config
from .resolve import build_config
from .schema import RENAMED, ROOT, Section, Spec, describe, is_host, lookup


@dataclass
class Problem:
    """One thing wrong with a configuration; `file` is None for defaults and overrides."""

    file: str | None
    key: str
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.key, self.message) if part)


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class _Report:
    """Collects problems; one per key and none under a broken key, so that follow-on
    checks do not repeat a cause already reported."""

    def __init__(self, file: str | None, override_keys: set[str]) -> None:
        self.file = file
        self.override_keys = override_keys
        self.problems: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        if key and any(key == p.key or key.startswith(p.key + ".") for p in self.problems):
            return
        overridden = any(key == o or key.startswith(o + ".") for o in self.override_keys)
        self.problems.append(Problem(None if overridden else self.file, key, message))


_ABSENT: Any = object()


def load_config(
    path: str | Path | None = None, *, overrides: Mapping[str, object] | None = None
) -> Config:
    """Load and check `path` (None: the embedded defaults), then apply `overrides`.

    Raises `ConfigError` listing every problem found.
    """
    overrides = dict(overrides or {})
    report = _Report(None if path is None else str(path), set(overrides))
    source: Path | None = None
    raw: dict[str, Any] = {}
    if path is not None:
        source = Path(path).expanduser().absolute()
        loaded = _read(source, report)
        if report.problems:
            raise ConfigError(report.problems)
        if loaded is not None and not isinstance(loaded, dict):
            keys = ", ".join(ROOT.names)
            report.add("", f"the top level must be a mapping with keys {keys} ({_got(loaded)})")
            raise ConfigError(report.problems)
        raw = loaded or {}
    raw = _apply_overrides(raw, overrides)
    values = _check_section(ROOT, raw, "", "", report)
    config = build_config(values, source, report.add)
    if report.problems or config is None:
        raise ConfigError(report.problems)
    return config


def check_file(path: str | Path) -> list[Problem]:
    """Every problem of the config file at `path`; an empty list means it is usable."""
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems
    return []


def _read(source: Path, report: _Report) -> object:
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        report.add("", "file not found; check the path")
        return None
    except UnicodeDecodeError:
        report.add("", "not a UTF-8 text file")
        return None
    except OSError as exc:
        report.add("", f"cannot read the file: {exc.strerror or exc}")
        return None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark, start = exc.problem_mark, exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        kind = "unsupported YAML" if isinstance(exc, ConstructorError) else "YAML syntax error"
        message = f"{kind}{where}: {exc.problem or exc}"
        if exc.context and start is not None:
            message += f" ({exc.context}, which starts at line {start.line + 1})"
        report.add("", message)
    except yaml.YAMLError as exc:
        report.add("", f"YAML syntax error: {exc}")
    return None


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, object]) -> dict[str, Any]:
    """A copy of `raw` with each dotted override set, creating sections as needed."""
    out = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = _coerce(lookup(dotted), value)
    return out


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(spec: Spec | None, value: object) -> object:
    """Overrides often arrive as text (environment, argv): convert what is unambiguous.

    Relative paths are taken from the current directory, not the config file's.
    """
    if isinstance(value, Path):
        value = str(value)
    if spec is None or not isinstance(value, str):
        return value
    text = value.strip()
    if spec.kind == "int" and text.lstrip("-").isdigit():
        return int(text)
    if spec.kind == "bool" and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    if spec.kind == "path" and text:
        return str(Path(text).expanduser().absolute())
    return value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_section(
    section: Section, raw: object, key: str, skey: str, report: _Report
) -> dict[str, Any]:
    """Validated values of every key of `section` (defaults for absent or bad ones).

    `key` is the dotted key shown to the user; `skey` the schema key, "*" for a folder name.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        report.add(key, f"must be a mapping with keys {', '.join(section.names)} ({_got(raw)})")
        raw = {}
    values = {
        spec.name: _check_value(
            spec, raw.get(spec.name, _ABSENT), _join(key, spec.name), _join(skey, spec.name), report
        )
        for spec in section.specs
    }
    for name in raw:
        if name not in section.names:
            _unknown(section, str(name), key, skey, report)
    return values


def _unknown(section: Section, name: str, key: str, skey: str, report: _Report) -> None:
    full = _join(key, name)
    renamed = RENAMED.get(_join(skey, name))
    if renamed is not None:
        report.add(full, f"renamed: use '{renamed}'")
        return
    where = f"in '{key}'" if key else "at the top level"
    message = f"unknown key '{name}' {where}; known keys: {', '.join(section.names)}"
    close = difflib.get_close_matches(name, section.names, n=1)
    if close:
        message += f"; did you mean '{close[0]}'?"
    report.add(full, message)


def _check_value(spec: Spec, value: object, key: str, skey: str, report: _Report) -> Any:
    if spec.kind == "section":
        assert spec.section is not None
        if value is _ABSENT or value is None:
            return None if spec.nullable else _check_section(spec.section, {}, key, skey, report)
        return _check_section(spec.section, value, key, skey, report)
    if spec.kind == "map":
        return _check_map(spec, value, key, skey, report)
    if value is _ABSENT:
        return spec.default
    if value is None and spec.nullable:
        return None
    checked = _LEAF_CHECKS[spec.kind](spec, value)
    if isinstance(checked, _Bad):
        secret = spec.secret or checked.hide
        got = "" if isinstance(value, list) and checked.hint else f" ({_got(value, secret=secret)})"
        report.add(key, f"must be {describe(spec)}{got}{checked.hint}")
        return spec.default
    return checked


def _check_map(spec: Spec, value: object, key: str, skey: str, report: _Report) -> Any:
    assert spec.section is not None
    if value is _ABSENT or value is None:
        return {}
    if not isinstance(value, dict):
        report.add(key, f"must be {describe(spec)} ({_got(value)})")
        return {}
    entries: dict[str, Any] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not name:
            report.add(_join(key, str(name)), "a folder path must be a non-empty string (quote it)")
            continue
        entries[name] = _check_section(spec.section, entry, _join(key, name), skey + ".*", report)
    return entries


@dataclass(frozen=True)
class _Bad:
    """A failed leaf check: `hint` says what to do, `hide` keeps the value out of messages."""

    hint: str = ""
    hide: bool = False


def _check_str(spec: Spec, value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _Bad("; put it in quotes")
    return value if isinstance(value, str) and value.strip() else _Bad()


def _check_int(spec: Spec, value: object) -> object:
    if not isinstance(value, int) or isinstance(value, bool):
        return _Bad()
    if spec.minimum is not None and value < spec.minimum:
        return _Bad()
    if spec.maximum is not None and value > spec.maximum:
        return _Bad()
    return value


def _check_bool(spec: Spec, value: object) -> object:
    return value if isinstance(value, bool) else _Bad()


def _check_choice(spec: Spec, value: object) -> object:
    if isinstance(value, bool):  # YAML 1.1 reads an unquoted on/off as a boolean
        value = "on" if value else "off"
    return value if value in spec.choices else _Bad()


def _check_host(spec: Spec, value: object) -> object:
    if isinstance(value, str) and is_host(value):
        return value
    if isinstance(value, str) and "://" in value:
        return _Bad("; give the host name only, without a scheme")
    if isinstance(value, str) and ":" in value:
        return _Bad("; give the port number under 'port'")
    return _Bad()


def _check_url(spec: Spec, value: object) -> object:
    if not isinstance(value, str):
        return _Bad()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return _Bad()
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return _Bad()
    if parts.username is not None or parts.password is not None:
        return _Bad("; put credentials under username and password_command", hide=True)
    return value


def _check_hosts(spec: Spec, value: object) -> object:
    if not isinstance(value, list):
        return _Bad()
    for item in value:
        if not isinstance(item, str) or not is_host(item):
            return _Bad(f"; {item!r} is not a host name")
    return tuple(value)


def _check_path(spec: Spec, value: object) -> object:
    return value if isinstance(value, str) and value.strip() else _Bad()


_LEAF_CHECKS: dict[str, Callable[[Spec, object], object]] = {
    "str": _check_str,
    "int": _check_int,
    "bool": _check_bool,
    "choice": _check_choice,
    "host": _check_host,
    "url": _check_url,
    "hosts": _check_hosts,
    "path": _check_path,
}


def _got(value: object, *, secret: bool = False) -> str:
    """ "got ..." in YAML terms; a secret's value is never shown, only its type."""
    if value is None:
        return "got null"
    if isinstance(value, bool):
        return "got " + ("true" if value else "false")
    if isinstance(value, dict):
        return "got a mapping"
    if isinstance(value, list):
        return "got a list"
    if secret:
        if isinstance(value, str):
            return "got a string"
        return "got a number" if isinstance(value, int | float) else "got a non-string value"
    if isinstance(value, str):
        return f"got {value!r}"
    return f"got {value}"


def _default_text(spec: Spec) -> str:
    if spec.default_doc is not None:
        return spec.default_doc
    value = spec.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[]"
    return f"`{value}`"


def schema_doc() -> str:
    """The configuration reference in Markdown, generated from the specs above."""
    out = ["# kbridge configuration reference", "", ROOT.doc, ""]

    def walk(section: Section, prefix: str, title: str) -> None:
        out.extend([f"## `{title}`", "", section.doc, ""])
        out.extend(["| key | type | default | meaning |", "|---|---|---|---|"])
        nested: list[tuple[Section, str, str]] = []
        for spec in section.specs:
            key = f"{prefix}{spec.name}"
            if spec.section is not None:
                sub = f"{key}.<folder>" if spec.kind == "map" else key
                nested.append((spec.section, sub + ".", sub))
                continue
            kind = describe(spec).removeprefix("a ").removeprefix("an ")
            kind += ", or null" if spec.nullable else ""
            doc = spec.doc.replace("|", "\\|")
            out.append(f"| `{key}` | {kind} | {_default_text(spec)} | {doc} |")
        out.append("")
        for args in nested:
            walk(*args)

    top = Section("Keys at the top level.", tuple(s for s in ROOT.specs if s.section is None))
    walk(top, "", "top level")
    for spec in ROOT.specs:
        if spec.section is not None:
            walk(spec.section, spec.name + ".", spec.name)
    return "\n".join(out).rstrip() + "\n"
