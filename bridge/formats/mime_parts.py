"""Reading a parsed MIME tree for import: header access, the leaf parts, which of them are the
body, and the attachment rows for the rest.

Every accessor here swallows the stdlib's exceptions and answers with a default: a message
part that cannot be read is skipped, never fatal.
"""

from __future__ import annotations

import binascii
import importlib
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.policy import EmailPolicy
from io import BytesIO

from bridge.formats.mime_decode import decode_bytes, header_text, scrub_line
from bridge.formats.mime_split import SplitPart
from bridge.model import flags, tags

# The stdlib's own base64 body decoder (what Message.get_payload(decode=True) uses).
_decode_b: Callable[[bytes], tuple[bytes, list[Exception]]] = importlib.import_module(
    "email._encoded_words"
).decode_b

MAX_PARTS = 5000  # MIME entities read per message; the rest is ignored
MAX_LONG = 2**31 - 1  # sizes are PT_LONG

_UNFOLD = re.compile(r"\r\n|\r|\n")
_PARAM_HEADERS = frozenset({"content-type", "content-disposition"})
_MAX_PARAM_HEADER = 2048
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_PATH_SEPARATORS = re.compile(r"[\\/]")
_CONTENT_ID = re.compile(r"<([^<>]*)>")
_SHORT_NAME_JUNK = re.compile(r"[^A-Z0-9_\-!#$%&'@^`{}~]")

_BODY_TYPES = frozenset({"text/plain", "text/html"})
_EMBEDDED_TYPES = frozenset({"message/rfc822", "message/global"})
# Extensions for attachments that arrive without a name (ATT00001.txt, as Outlook names them).
_EXTENSIONS = {
    "text/plain": ".txt",
    "text/html": ".htm",
    "text/calendar": ".ics",
    "text/rfc822-headers": ".txt",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "application/pdf": ".pdf",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "application/pkcs7-mime": ".p7m",
    "application/x-pkcs7-mime": ".p7m",
}


class RawHeaderPolicy(EmailPolicy):
    """policy.default, except that header values come back as plain unfolded strings.

    The structured header classes of policy.default take quadratic time on some malformed
    values (100 KB of quotes in a To: header: minutes) and raise on others, so every header
    is decoded by this package instead. Content-Type and Content-Disposition are capped
    because the stdlib's parameter splitter, which the parser itself uses, is quadratic too.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        if type(value) is str:
            # Unfolded: every CR and LF goes. Two tests (and replaces) cost less than the
            # regex substitution, with the same result; most values have neither.
            if "\n" in value:
                value = value.replace("\n", "")
            if "\r" in value:
                value = value.replace("\r", "")
        else:  # a header object set by code: the substitution makes it a plain str
            value = _UNFOLD.sub("", value)
        if len(value) > _MAX_PARAM_HEADER and name.lower() in _PARAM_HEADERS:
            value = value[:_MAX_PARAM_HEADER]
        return value


PARSE_POLICY = RawHeaderPolicy()
# Re-serializes parsed parts (embedded messages) with their header lines as they came.
_SERIALIZE_POLICY = PARSE_POLICY.clone(refold_source="none", linesep="\r\n")


# --- header access --------------------------------------------------------------------------


def headers(msg: Message, name: str) -> list[str]:
    """All values of a header, unfolded and undecoded; [] when absent or unreadable."""
    try:
        values = msg.get_all(name) or []
    except Exception:
        return []
    return [v for v in values if isinstance(v, str)]


def header(msg: Message, name: str) -> str | None:
    if type(msg) is SplitPart:  # the common case, answered from its index
        value = msg.get(name)
        if value is None or isinstance(value, str):
            return value
    values = headers(msg, name)
    return values[0] if values else None


def content_type(part: Message) -> str:
    """The lower-cased MIME type; text/plain when it is missing or invalid (RFC 2045 5.2)."""
    try:
        ctype = part.get_content_type().strip().lower()
    except Exception:
        return "text/plain"
    return ctype if _MIME_TYPE.fullmatch(ctype) else "text/plain"


def param(part: Message, name: str) -> str | None:
    """A Content-Type parameter, lower-cased."""
    try:
        value = part.get_param(name)
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231: (charset, language, value)
        value = value[2]
    return scrub_line(value).strip().lower() if isinstance(value, str) else None


def charset(part: Message) -> str | None:
    try:
        value = part.get_content_charset()
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _filename(part: Message) -> str | None:
    """The part's file name, decoded, without directories.

    RFC 2231 values are decoded in their charset; a plain value may hold RFC 2047 encoded
    words (not standard, but what many mailers send).
    """
    for header_name, name in (("content-disposition", "filename"), ("content-type", "name")):
        try:
            value = part.get_param(name, header=header_name)
        except Exception:
            continue
        if isinstance(value, tuple):  # RFC 2231: the octets as latin-1 code points
            try:
                octets = value[2].encode("latin-1", "surrogateescape")
            except UnicodeEncodeError:
                octets = value[2].encode("utf-8", "replace")
            text = scrub_line(decode_bytes(octets, value[0]))
        elif isinstance(value, str):
            text = header_text(value)
        else:
            continue
        text = _PATH_SEPARATORS.split(text)[-1].strip()
        return text or None
    return None


def _content_id(part: Message) -> str | None:
    value = header(part, "content-id")
    if value is None:
        return None
    value = scrub_line(value).strip()
    match = _CONTENT_ID.search(value)
    value = (match.group(1) if match else value).strip()
    return value or None


def base64_body(raw: bytes) -> bytes:
    """The content of a base64 body as it stands in a message: what
    get_payload(decode=True) gives for it (defects are not reported)."""
    return _decode_b(raw.translate(None, b"\r\n"))[0]


class Base64Decoder:
    """Clean base64 text (`clean_base64_size` sizes it) decoded piece by piece, as it is
    read: `feed` gives the content of the whole quanta fed so far, `end` that of the rest.
    What the pieces give is what `base64_body` gives for the whole text."""

    __slots__ = ("_carry",)

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, text: bytes) -> bytes:
        text = self._carry + text.translate(None, b"\r\n")
        whole = len(text) - len(text) % 4
        self._carry = text[whole:]
        return binascii.a2b_base64(text[:whole]) if whole else b""

    def end(self) -> bytes:
        rest, self._carry = self._carry, b""
        return base64_body(rest) if rest else b""


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def clean_base64_size(raw: bytes) -> int | None:
    """The length of `base64_body(raw)` when `raw` is clean base64 text (alphabet
    characters in CRLF or LF lines, whole quanta, padding only at the end), found without
    decoding it; None for any other text.

    One pass over `raw`, and no copy of it: what is not in the alphabet (line breaks,
    padding, anything else) is a few bytes in clean text."""
    rest = raw.translate(None, _BASE64_ALPHABET)
    pad = rest.count(b"=")
    if pad > 2 or rest.translate(None, b"\r\n="):
        return None  # more than two "=", or a character no base64 text has
    length = len(raw) - len(rest) + pad  # of the text without its line breaks
    if length % 4:
        return None
    # The padding must end the text: after the first "=", only "=" and line breaks.
    if pad and raw[raw.find(b"=") :].translate(None, b"\r\n="):
        return None
    return length // 4 * 3 - pad


def encoded_base64(part: Message) -> bytes | None:
    """The base64 body of a leaf as it stands in the message (`base64_body` gives its
    content), where the splitter kept it; None for any other leaf."""
    raw = part.raw_body if isinstance(part, SplitPart) else None
    if raw is None or part.is_multipart():
        return None
    if str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return None
    return raw


def payload_bytes(part: Message) -> bytes:
    """The decoded content of a part; b"" when there is none or it cannot be read."""
    if part.is_multipart():
        blocks = part.get_payload()
        return b"".join(serialize(b) for b in blocks if isinstance(b, Message))
    raw = part.raw_body if isinstance(part, SplitPart) else None
    if raw is not None:
        # What get_payload(decode=True) gives, from the bytes it would first re-encode.
        cte = str(part.get("content-transfer-encoding", "")).lower()
        if cte == "base64":
            # the lines joined (what b"".join(raw.splitlines()) gives, in one pass)
            value, defects = _decode_b(raw.translate(None, b"\r\n"))
            for defect in defects:
                part.policy.handle_defect(part, defect)  # type: ignore[arg-type]
            return value
        if cte not in ("quoted-printable", "x-uuencode", "uuencode", "uue", "x-uue"):
            return raw
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


class RawBytesGenerator(BytesGenerator):
    """BytesGenerator that writes every 8-bit text as the bytes it stands for.

    The stock one encodes a message/rfc822 payload held as text (8-bit bytes as surrogate
    escapes, as the parser leaves them) with a strict ASCII codec and fails on it.
    """

    def _encode(self, s: str) -> bytes:
        return s.encode("ascii", "surrogateescape")


def serialize(msg: Message) -> bytes:
    """A parsed message or part back to bytes, header lines as they came; b"" when the
    generator gives up (on nesting too deep for it, say)."""
    out = BytesIO()
    try:
        RawBytesGenerator(out, mangle_from_=False, policy=_SERIALIZE_POLICY).flatten(msg)
    except Exception:
        return b""
    return out.getvalue()


# --- tree -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Leaf:
    """A non-multipart entity, with the multipart/alternative groups it belongs to."""

    part: Message
    ctype: str
    alternatives: tuple[int, ...]


def leaves(root: Message) -> list[Leaf]:
    """The leaf entities in document order; message/* parts are leaves, not descended into.

    Iterative and capped at MAX_PARTS entities: no nesting can exhaust the stack.
    """
    found: list[Leaf] = []
    stack: list[tuple[Message, tuple[int, ...]]] = [(root, ())]
    groups = 0
    visited = 0
    while stack and visited < MAX_PARTS:
        part, alternatives = stack.pop()
        visited += 1
        ctype = content_type(part)
        if ctype.startswith("multipart/"):
            if part.is_multipart():
                if ctype == "multipart/alternative":
                    groups += 1
                    alternatives = (*alternatives, groups)
                children = [p for p in part.get_payload() if isinstance(p, Message)]
                stack.extend((child, alternatives) for child in reversed(children))
                continue
            ctype = "text/plain"  # no usable boundary: the text is all there is
        found.append(Leaf(part, ctype, alternatives))
    return found


def _is_body(leaf: Leaf) -> bool:
    return (
        leaf.ctype in _BODY_TYPES
        and _disposition(leaf.part) != "attachment"
        and _filename(leaf.part) is None
    )


def body_parts(parts: list[Leaf]) -> tuple[Leaf | None, Leaf | None]:
    """The text/plain and text/html body parts.

    The body is the first inline, unnamed text part; when it sits in a multipart/alternative,
    the other form is taken from the same group.
    """
    first = next((leaf for leaf in parts if _is_body(leaf)), None)
    if first is None:
        return None, None
    members = [first]
    if first.alternatives:
        group = first.alternatives[-1]
        members = [leaf for leaf in parts if group in leaf.alternatives and _is_body(leaf)]
    plain = next((leaf for leaf in members if leaf.ctype == "text/plain"), None)
    html = next((leaf for leaf in members if leaf.ctype == "text/html"), None)
    return plain, html


def short_name(long_name: str) -> str:
    """An 8.3 form of a file name: REPORT.PDF, QUARTE~1.XLS."""
    stem, dot, ext = long_name.rpartition(".")
    if not dot or not stem:
        stem, ext = long_name, ""
    short_stem = _SHORT_NAME_JUNK.sub("", stem.upper()) or "ATTACH"
    short_ext = _SHORT_NAME_JUNK.sub("", ext.upper())[:3]
    if len(short_stem) > 8 or short_stem != stem.upper() or len(ext) > 3:
        short_stem = short_stem[:6] + "~1"
    return short_stem + ("." + short_ext if short_ext else "")


def _embedded_subject(inner: Message) -> str | None:
    subject = header(inner, "subject")
    text = header_text(subject) if subject is not None else ""
    return text or None


def attachment_props(
    leaf: Leaf, num: int, undecoded_min: int | None = None
) -> tuple[dict[int, object], bytes, bytes | None, int | None, int] | None:
    """For a leaf: its attachment row; its content; the base64 text the content is
    decoded from, where it stands as such in the message (`encoded_base64`); None, or the
    content's size when it was not decoded; and where that text starts in the message (-1:
    not known). None for an empty, unnamed part. Clean base64 content of at least
    `undecoded_min` bytes is not decoded: the content is then b""."""
    encoded = None
    undecoded = None
    part = leaf.part
    filename = _filename(part)
    cid = _content_id(part)
    payload = part.get_payload() if part.is_multipart() else None
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        inner: Message | None = payload[0]
    else:
        inner = None
    if leaf.ctype in _EMBEDDED_TYPES and inner is not None:
        data = serialize(inner)
        method = flags.ATTACH_EMBEDDED_MSG
        display = _embedded_subject(inner) or filename or "Untitled message"
    else:
        inner = None
        encoded = encoded_base64(part)
        if undecoded_min is not None and encoded is not None:
            size = clean_base64_size(encoded)
            if size is not None and size >= undecoded_min:
                undecoded = size
        data = payload_bytes(part) if undecoded is None else b""
        method = flags.ATTACH_BY_VALUE
        if not data and not undecoded and filename is None:
            return None
        if filename is None:
            filename = f"ATT{num + 1:05d}{_EXTENSIONS.get(leaf.ctype, '.dat')}"
        display = filename
    props: dict[int, object] = {
        tags.ATTACH_NUM: num,
        tags.ATTACH_METHOD: method,
        tags.ATTACH_MIME_TAG: leaf.ctype,
        tags.ATTACH_SIZE: min(len(data) if undecoded is None else undecoded, MAX_LONG),
        tags.ATTACHMENT_HIDDEN: cid is not None and _disposition(part) != "attachment",
        tags.RENDERING_POSITION: -1,
        tags.DISPLAY_NAME: display,
    }
    if cid is not None:
        props[tags.ATTACH_CONTENT_ID] = cid
    if filename is not None:
        props[tags.ATTACH_LONG_FILENAME] = filename
        props[tags.ATTACH_FILENAME] = short_name(filename)
        extension = posixpath.splitext(filename)[1]
        if extension:
            props[tags.ATTACH_EXTENSION] = extension
    at = part.raw_at if encoded is not None and isinstance(part, SplitPart) else -1
    return props, data, encoded, undecoded, at
