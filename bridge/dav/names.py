"""Names in the WebDAV tree: safe on Windows and macOS, stable, unique within a collection.

A folder's name is its display name with the characters Windows refuses (and `%` itself)
written as `%XX`, so the mapping is reversible; an item without a client-given name is
listed as `<subject> [m345].<ext>`, which stays unique through the id."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bridge.model import classes

_UNSAFE = frozenset('\\/:*?"<>|%')
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{n}" for n in range(1, 10)]
    + [f"LPT{n}" for n in range(1, 10)]
)
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_ID_SUFFIX = re.compile(r" \[m([1-9][0-9]{0,17})\](\.[^.]*)?$")
MAX_BASE = 80
ATTACHMENTS_SUFFIX = ".attachments"

# Message class prefix → extension of the item's content.
EXTENSIONS: tuple[tuple[str, str], ...] = (
    (classes.IPM_APPOINTMENT, ".ics"),
    ("IPM.Schedule.Meeting", ".eml"),
    (classes.IPM_TASK, ".ics"),
    (classes.IPM_CONTACT, ".vcf"),
    (classes.IPM_DISTLIST, ".vcf"),
    (classes.IPM_STICKYNOTE, ".txt"),
)
SOURCE_EXTENSIONS = {
    "message/rfc822": ".eml",
    "text/calendar": ".ics",
    "text/vcard": ".vcf",
    "text/x-vcard": ".vcf",
    "text/plain": ".txt",
}
CONTENT_TYPES = {
    ".eml": "message/rfc822",
    ".ics": "text/calendar; charset=utf-8",
    ".vcf": "text/vcard; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def _hex(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode("utf-8"))


# Every character `escape` replaces is ASCII: one table does it.
_ESCAPES = {ord(c): _hex(c) for c in _UNSAFE} | {n: _hex(chr(n)) for n in range(0x20)}


def escape(name: str) -> str:
    """A display name as a safe path segment (reversible with `unescape`)."""
    out = name.translate(_ESCAPES)
    stripped = out.rstrip(". ")
    if stripped != out:
        out = stripped + "".join(_hex(c) for c in out[len(stripped) :])
    if not out:
        return "%20"
    stem = out.split(".", 1)[0].upper()
    if stem in _RESERVED:
        out = _hex(out[0]) + out[1:]
    return out


def unescape(segment: str) -> str:
    """The display name a client means by a path segment it made (MKCOL)."""
    raw = _ESCAPE.sub(
        lambda m: chr(int(m.group(1), 16)) if m.group(1) < "80" else m.group(0), segment
    )
    return raw


def extension_for(message_class: str, source_type: str | None) -> str:
    if source_type:
        ext = SOURCE_EXTENSIONS.get(source_type.split(";")[0].strip().lower())
        if ext:
            return ext
    mc = message_class.lower()
    for prefix, ext in EXTENSIONS:
        p = prefix.lower()
        if mc == p or mc.startswith(p + "."):
            return ext
    return ".eml"


def derived_item_name(item_id: int, subject: str | None, ext: str) -> str:
    base = escape((subject or "").strip()[:MAX_BASE].strip()) if subject and subject.strip() else ""
    tag = f"[m{item_id}]"
    return f"{base} {tag}{ext}" if base else f"{tag}{ext}"


def id_in_name(name: str) -> int | None:
    """The item id a derived (or disambiguated) name carries, if any."""
    m = _ID_SUFFIX.search(name) or re.match(r"^\[m([1-9][0-9]{0,17})\](\.[^.]*)?$", name)
    return int(m.group(1)) if m else None


def with_id(name: str, item_id: int) -> str:
    """`name` made unique by the item id: `report [m12].pdf`."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name} [m{item_id}]"
    return f"{stem} [m{item_id}].{ext}"


def unique(names: Iterable[tuple[int, str]], taken: set[str]) -> dict[int, str]:
    """Disambiguate (id, wanted name) pairs, lowest id first; `taken` holds the folded
    names already used (subfolders). Case-insensitive, as on Windows and macOS."""
    out: dict[int, str] = {}
    for item_id, name in sorted(names):
        folded = name.casefold()
        if folded in taken:
            name = with_id(name, item_id)
            folded = name.casefold()
        taken.add(folded)
        out[item_id] = name
    return out


def document_class(name: str) -> str:
    """`IPM.Document.<ext>` for a file dropped into a folder (what Exchange does)."""
    _, dot, ext = name.rpartition(".")
    cls = f"{classes.IPM_DOCUMENT_PREFIX}{ext.lower()}" if dot and ext else "IPM.Document"
    return cls if classes.is_valid_message_class(cls) and " " not in cls else "IPM.Document"
