"""A fast MIME tree splitter for well-formed messages.

The stdlib's feed parser reads a message line by line in Python, which makes a 1 MB
base64 attachment cost 14,000 iterations. This module finds the header blocks and the
boundary lines with C-speed searches instead and builds the same `Message` tree the stdlib
parser builds: header fields are split as the stdlib's parser splits them (same policy,
same values), payloads are the same surrogate-escaped text. Whatever it is not sure about
(a missing closing boundary, a header block the stdlib would read differently, message/* parts,
multipart/digest) makes `split` return None, and the caller falls back to the stdlib parser.
"""

from __future__ import annotations

import itertools
import re
from email.message import EmailMessage, Message
from email.policy import EmailPolicy, Policy
from typing import Any

MAX_DEPTH = 20
_BARE_CR = re.compile(rb"\r(?!\n)")
# Where a header field starts: after a line break, at a line that is no continuation.
_FIELD_START = re.compile(r"\n(?![ \t])")
# What comes before the colon of a field's first line: the name, maybe blanks (and no
# "From " line: the stdlib takes one for an mbox separator).
_FIELD_NAME = re.compile(r"(?!From )[!-9;-~]+[ \t]*")
_STOCK_SOURCE_PARSE = EmailPolicy.header_source_parse
# The parameters of header values, parsed as the stdlib parses them (a function of the value
# alone), for all parts: most values recur ("text/plain; charset=utf-8"), and the stdlib's
# parameter parser is slow. Bounded: emptied when full.
_SHARED_PARAMS: dict[str, tuple[Any, ...]] = {}
_SHARED_PARAMS_MAX = 1024
_SHARED_PARAMS_VALUE = 512  # longer values are parsed each time
# get_param's answers for them: (value, parameter name, unquote) → the parameter's value
_SHARED_PARAM: dict[tuple[str, str, bool], Any] = {}
_UNKNOWN = object()
_NOT_THERE = object()


class SplitPart(EmailMessage):
    """A message or part as `split` builds it: the class the stdlib parser builds, with its
    header lookups answered from an index (a message is read many times, never changed
    while it is), and the undecoded bytes of a leaf's body kept in `raw_body`. The index
    keeps each header's values as the policy fetches them, and each parameter header's
    parsed parameters, once asked for; any change of the headers starts it over. Parsed
    parameters and get_param's answers are also kept for all parts, by header value.

    A leaf's payload (the body as surrogate-escaped text, what the stdlib parser keeps) is
    made from `raw_body` when first asked for: the parser reads most bodies from the bytes,
    and decoding every body to text cost about a tenth of a message's parse."""

    # A leaf's body as it stands in the message split (which has no bare CR: `split`
    # declines such messages), and where it starts there.
    raw_body: bytes | None = None
    raw_at = -1
    _lazy_body: bytes | None = None  # a leaf's body whose payload text is not made yet
    _payload_value: Any = None

    @property
    def _payload(self) -> Any:
        lazy = self._lazy_body
        if lazy is not None:
            self._payload_value = lazy.decode("ascii", "surrogateescape")
            self._lazy_body = None
        return self._payload_value

    @_payload.setter
    def _payload(self, value: Any) -> None:
        self._lazy_body = None
        self._payload_value = value

    def is_multipart(self) -> bool:
        return self._lazy_body is None and isinstance(self._payload_value, list)

    _index: dict[str, list[Any]] | None = None
    _indexed: list[Any] | None = None  # the header list indexed
    _indexed_len = -1
    _fetched: dict[str, list[Any]] | None = None
    _derived: dict[tuple[str, str], Any] | None = None  # parsed parameters, content type

    def set_headers(
        self, found: list[tuple[str, Any]], index: dict[str, list[Any]] | None = None
    ) -> None:
        """Set the header fields as parsed, and their index (made here when not given: the
        fields of each name in lower case, in order)."""
        self._headers = found
        self._reindex(found, index)

    def _reindex(self, headers: list[Any], index: dict[str, list[Any]] | None = None) -> None:
        if index is None:
            index = {}
            for item in headers:
                index.setdefault(item[0].lower(), []).append(item)
        self._index = index
        self._indexed, self._indexed_len = headers, len(headers)
        self._fetched = {}
        self._derived = {}

    def _values(self, name: str) -> list[Any] | None:
        """The values of a header as the policy fetches them (a list not to be changed)."""
        headers: list[Any] = self._headers
        fetched = self._fetched
        if fetched is None or self._indexed is not headers or self._indexed_len != len(headers):
            self._reindex(headers)
            fetched = self._fetched
            assert fetched is not None
        lname = name.lower()
        values = fetched.get(lname)
        if values is None:
            assert self._index is not None
            found = self._index.get(lname)
            if not found:
                return None
            fetch = self.policy.header_fetch_parse
            values = fetched[lname] = [fetch(k, v) for k, v in found]
        return values

    def get(self, name: str, failobj: Any = None) -> Any:
        values = self._values(name)
        return values[0] if values else failobj

    def get_all(self, name: str, failobj: Any = None) -> Any:
        values = self._values(name)
        return list(values) if values else failobj

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._values(name) is not None

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        values = self._values(header)  # (re)builds the index first
        if values is None:
            return failobj
        assert self._derived is not None
        key = ("params", header.lower())
        params = self._derived.get(key)
        if params is None:
            value = values[0]  # what the stdlib's method parses
            shared = type(value) is str and len(value) <= _SHARED_PARAMS_VALUE
            params = _SHARED_PARAMS.get(value) if shared else None
            if params is None:
                params = tuple(super()._get_params_preserve(failobj, header))  # type: ignore[misc]
                if shared:
                    if len(_SHARED_PARAMS) >= _SHARED_PARAMS_MAX:
                        _SHARED_PARAMS.clear()
                    _SHARED_PARAMS[value] = params
            self._derived[key] = params
        return list(params)

    def get_param(
        self, param: str, failobj: Any = None, header: str = "content-type", unquote: bool = True
    ) -> Any:
        values = self._values(header)  # (re)builds the index first
        if values is None:
            return failobj
        value = values[0]
        if type(value) is not str or len(value) > _SHARED_PARAMS_VALUE or type(param) is not str:
            return super().get_param(param, failobj, header, unquote)
        # The stdlib's answer is a function of the value, the parameter's name in lower case
        # and `unquote`; kept for all parts, as the parsed parameters are.
        key = (value, param.lower(), bool(unquote))
        found = _SHARED_PARAM.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = super().get_param(param, _NOT_THERE, header, unquote)
            if len(_SHARED_PARAM) >= _SHARED_PARAMS_MAX:
                _SHARED_PARAM.clear()
            _SHARED_PARAM[key] = found
        return failobj if found is _NOT_THERE else found

    def get_content_type(self) -> str:
        if self._values("content-type") is None:
            return self.get_default_type()
        assert self._derived is not None
        ctype = self._derived.get(("type", ""))
        if ctype is None:
            ctype = self._derived["type", ""] = super().get_content_type()
        return str(ctype)

    def replace_header(self, _name: str, _value: Any) -> None:
        self._fetched = None
        super().replace_header(_name, _value)


def header_end(raw: bytes, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """Where the first blank line of raw[start:end] starts and ends (positions in `raw`):
    the span of the leftmost match of `\r?\n\r?\n`, found with two substring searches (a
    regex search runs its pattern at every byte, several times slower over a header block).
    None when there is none."""
    stop = len(raw) if end is None else end
    crlf = raw.find(b"\n\r\n", start, stop)
    lf = raw.find(b"\n\n", start, crlf + 1 if crlf >= 0 else stop)
    at = lf if lf >= 0 else crlf
    if at < 0:
        return None
    first = at - 1 if at > start and raw[at - 1] == 13 else at  # the CR of a CRLF before it
    return first, at + (2 if at == lf else 3)


def split(raw: bytes, policy: Policy) -> Message | None:
    """The message tree of `raw`, or None when the stdlib parser must decide."""
    if _BARE_CR.search(raw):
        return None  # bare CRs end lines for the stdlib parser (checked once: every part
        # is a span of `raw` that ends before a line break, so none has a bare CR then)
    return _entity(raw, 0, len(raw), policy, 0)


def _headers(head: bytes, policy: Policy) -> SplitPart | None:
    """A part with the header block `head`, as the stdlib's feed parser reads it; None
    where it would record a defect or read the block otherwise (a line that is neither a
    field nor a continuation, a continuation first, a "From " line)."""
    msg = SplitPart(policy)
    if not head:
        return msg
    text = head.decode("ascii", "surrogateescape")
    if text[0] in " \t":
        return None  # a continuation line first
    # Each field with its continuation lines. Its first line must be a field name and a
    # colon (the first colon: a name has none).
    fields = _FIELD_START.split(text)
    found: list[tuple[str, str]] = []
    if type(policy).header_source_parse is _STOCK_SOURCE_PARSE:
        index: dict[str, list[tuple[str, str]]] = {}
        for field in fields:
            name, colon, value = field.partition(":")
            if not colon or not _FIELD_NAME.fullmatch(name):
                return None
            # What that method makes of the field's lines (each with its "\n" back),
            # inline: the name up to the colon; the rest, leading blanks and trailing line
            # breaks off.
            item = (name, value.lstrip(" \t").rstrip("\r\n"))
            found.append(item)
            index.setdefault(name.lower(), []).append(item)
        msg.set_headers(found, index)
        return msg
    for field in fields:
        name, colon, _ = field.partition(":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            return None
    source = policy.header_source_parse
    found = [source([line + "\n" for line in field.split("\n")]) for field in fields]
    msg.set_headers(found)
    return msg


def _entity(raw: bytes, start: int, end: int, policy: Policy, depth: int) -> Message | None:
    """The part raw[start:end]. Parts are read in place, as spans of the message: only
    the header blocks and a leaf's body are copied, once (the bodies of large attachments
    are most of a message's bytes)."""
    if depth > MAX_DEPTH:
        return None
    if raw.startswith(b"\r\n", start, end):
        head, body_at = b"", start + 2
    elif raw.startswith(b"\n", start, end):
        head, body_at = b"", start + 1
    else:
        span = header_end(raw, start, end)
        if span is None:
            return None
        head, body_at = raw[start : span[0]], span[1]
    msg = _headers(head, policy)
    if msg is None:
        return None
    ctype = msg.get_content_type()
    maintype = ctype.split("/")[0]  # (what get_content_maintype gives)
    if maintype == "multipart" and str(
        msg.get("content-transfer-encoding", "7bit")
    ).lower() not in (
        "7bit",
        "8bit",
        "binary",
    ):
        return None  # the stdlib records a defect for it
    if maintype == "message" or ctype == "multipart/digest":
        return None
    if maintype != "multipart":
        msg._lazy_body = msg.raw_body = raw[body_at:end]
        msg.raw_at = body_at
        return msg
    boundary = msg.get_boundary()
    if not boundary:
        return None
    parts = _parts(raw, body_at, end, boundary.encode("ascii", "surrogateescape"))
    if parts is None:
        return None
    preamble, chunks, epilogue = parts
    children = []
    for chunk_start, chunk_end in chunks:
        child = _entity(raw, chunk_start, chunk_end, policy, depth + 1)
        if child is None:
            return None
        children.append(child)
    msg._payload = children
    msg.preamble = preamble
    # Nothing at all after a nested multipart's closing boundary: the stdlib says None.
    msg.epilogue = "" if epilogue is None and not depth else epilogue
    return msg


def _parts(
    raw: bytes, start: int, end: int, boundary: bytes
) -> tuple[str | None, list[tuple[int, int]], str | None] | None:
    """Preamble, part spans (each without the line break before the next boundary) and
    epilogue of the multipart body raw[start:end]; None if not clean."""
    marker = b"--" + boundary
    found: list[tuple[int, int, bool]] = []  # (start, end of line without EOL, closing)
    at = raw.find(marker, start, end)
    while at >= 0:
        if at == start or raw[at - 1] == 10:  # at the start of a line
            eol = raw.find(b"\n", at, end)
            stop = end if eol < 0 else eol
            line_end = stop - 1 if stop > at and raw[stop - 1] == 13 else stop
            rest = raw[at + len(marker) : line_end]
            closing = rest.startswith(b"--")
            if not rest[2 if closing else 0 :].strip(b" \t"):
                found.append((at, line_end, closing))
        at = raw.find(marker, at + 1, end)
    if len(found) < 2 or not found[-1][2] or any(f[2] for f in found[:-1]):
        return None
    if any(f[1] >= end or raw[f[1]] not in (10, 13) for f in found[:-1]):
        return None
    chunks = []
    for here, after in itertools.pairwise(found):
        first = here[1] + (2 if raw[here[1]] == 13 else 1)
        chunks.append((first, _without_eol(raw, first, after[0])))
    pre = raw[start : _without_eol(raw, start, found[0][0])]
    rest = raw[found[-1][1] : end]
    if not rest:
        return _decoded(pre, found[0][0] - start), chunks, None
    rest = rest[2:] if rest.startswith(b"\r\n") else rest[1:] if rest.startswith(b"\n") else rest
    return _decoded(pre, found[0][0] - start), chunks, rest.decode("ascii", "surrogateescape")


def _decoded(preamble: bytes, start: int) -> str | None:
    return preamble.decode("ascii", "surrogateescape") if start else None


def _without_eol(raw: bytes, start: int, end: int) -> int:
    """The end of raw[start:end] without its final line break, if any."""
    if raw.endswith(b"\r\n", start, end):
        return end - 2
    if raw.endswith(b"\n", start, end):
        return end - 1
    return end
