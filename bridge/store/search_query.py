"""The search query syntax, parsed into an FTS5 MATCH expression and SQL conditions.

    words "a phrase" from:alice to:"Bob Smith" subject:report has:attachment
    before:2024-05-01 after:2024-01-01 -excluded report*

Terms are ANDed. `-term` excludes (needs at least one other term). A trailing `*` makes a
word a prefix. `before:` is "received before that day" and `after:` "received on that day
or later" (UTC). User text only ever reaches FTS5 inside double-quoted strings, case-folded
like the indexed text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from bridge.store.errors import InvalidValue

MAX_QUERY = 1000
MAX_TERMS = 64

# Field operators → FTS5 column filters.
COLUMNS = {
    "subject": "{subject}",
    "from": "{sender}",
    "to": "{recipients}",
    "body": "{body}",
    "attachment": "{attachments}",
    "filename": "{attachments}",
}
_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)


class QueryError(InvalidValue):
    """A search query that cannot be parsed."""


@dataclass(slots=True)
class SearchQuery:
    match: str | None = None  # FTS5 expression, None = no text terms
    has_attachment: bool = False
    before: int | None = None  # FILETIME, exclusive
    after: int | None = None  # FILETIME, inclusive
    terms: list[str] = field(default_factory=list)


def fts_string(text: str) -> str:
    """`text` as an FTS5 string literal (a phrase of its tokens)."""
    return '"' + text.replace('"', '""') + '"'


def _lex(q: str) -> list[tuple[bool, str | None, str, bool, bool]]:
    """(negated, operator, text, quoted, prefix) per term."""
    out = []
    i, n = 0, len(q)
    while i < n:
        if q[i].isspace():
            i += 1
            continue
        negated = q[i] == "-" and i + 1 < n and not q[i + 1].isspace()
        if negated:
            i += 1
        op = None
        j = i
        while j < n and (q[j].isalpha() or q[j] == "_"):
            j += 1
        if j < n and j > i and q[j] == ":" and j + 1 < n and not q[j + 1].isspace():
            op, i = q[i:j].lower(), j + 1
        if i < n and q[i] == '"':
            end = q.find('"', i + 1)
            if end < 0:
                raise QueryError('unbalanced " in the search query')
            text, quoted, prefix = q[i + 1 : end], True, False
            i = end + 1
            if i < n and q[i] == "*":
                raise QueryError("a phrase cannot be a prefix; put * after a word")
        else:
            j = i
            while j < n and not q[j].isspace() and q[j] != '"':
                j += 1
            text, quoted = q[i:j], False
            i = j
            prefix = text.endswith("*")
            text = text.rstrip("*") if prefix else text
            if "*" in text:
                raise QueryError("'*' is allowed only at the end of a word")
        out.append((negated, op, text, quoted, prefix))
    return out


def _date(op: str, text: str) -> int:
    try:
        day = dt.date.fromisoformat(text)
        if len(text) != 10:
            raise ValueError(text)
    except ValueError:
        raise QueryError(f"{op}: needs a date like 2024-05-01, not '{text}'") from None
    moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 10


def parse(q: str) -> SearchQuery:
    if len(q) > MAX_QUERY:
        raise QueryError(f"the search query is longer than {MAX_QUERY} characters")
    terms = _lex(q)
    if not terms:
        raise QueryError("the search query is empty")
    if len(terms) > MAX_TERMS:
        raise QueryError(f"the search query has more than {MAX_TERMS} terms")
    out = SearchQuery()
    positive: list[str] = []
    negative: list[str] = []
    for negated, op, text, quoted, prefix in terms:
        if op in ("has", "before", "after"):
            if negated:
                raise QueryError(f"-{op}: is not supported")
            if op == "has":
                if text.lower() not in ("attachment", "attachments"):
                    raise QueryError("has: knows only has:attachment")
                out.has_attachment = True
            elif op == "before":
                out.before = _date(op, text)
            else:
                out.after = _date(op, text)
            continue
        column = None
        if op is not None and op in COLUMNS:
            column = COLUMNS[op]
        elif op is not None:
            text = f"{op}:{text}"  # not an operator: plain text (a URL, a time)
        if not text.strip():
            raise QueryError("a search term is empty")
        expr = fts_string(text.casefold()) + ("*" if prefix and not quoted else "")
        if column:
            expr = f"{column} : {expr}"
        (negative if negated else positive).append(expr)
        out.terms.append(text)
    if negative and not positive:
        raise QueryError("a query cannot consist only of excluded (-) terms")
    if positive:
        match = " AND ".join(positive)
        if negative:
            match = f"({match})" + "".join(f" NOT {e}" for e in negative)
        out.match = match
    return out


MAX_RUN = 256  # longer runs are left out of a prefilter


def _word_char(c: str) -> bool:
    return c < "\x80" and c.isalnum()


def content_prefilter(needle: str, match: str) -> str | None:
    """An FTS5 expression true for every text that a CONTENT restriction with this needle
    matches (`match`: full, prefix, substring), case-sensitive or not; None when there is
    none. The index holds `casefold(text)`; casefold maps character by character, so
    `needle in text` implies `casefold(needle) in casefold(text)`. Only runs of ASCII letters
    and digits are used, whose tokenization by unicode61 is known exactly (every ASCII
    letter and digit is a token character, every other ASCII character a separator): a run
    that starts after an ASCII separator of the needle (or at the start of a full or prefix
    match) starts a token of the text, so the token begins with the run ("run"*); if it
    also ends before an ASCII separator (or at the end of a full match), it is the token."""
    text = needle.casefold()
    terms = []
    i, n = 0, len(text)
    while i < n:
        if not _word_char(text[i]):
            i += 1
            continue
        j = i
        while j < n and _word_char(text[j]):
            j += 1
        starts = (i == 0 and match in ("full", "prefix")) or (i > 0 and text[i - 1] < "\x80")
        ends = (j == n and match == "full") or (j < n and text[j] < "\x80")
        if starts and j - i <= MAX_RUN:
            terms.append(fts_string(text[i:j]) + ("" if ends else "*"))
        i = j
    return " AND ".join(terms) if terms else None
