"""Restrictions and sort orders → SQL over the items table (alias `i`).

Properties with a real column compile to it (indexed where the schema has an index); the
properties the store computes (flags, sizes, entry ids, times) compile to expressions of
their columns; every other property is read from the JSON document with `json_extract`
(the slower path). Multi-valued properties are tested with EXISTS over `json_each` (and
PidNameKeywords over `item_categories`), sub-restrictions with EXISTS over `recipients` /
`attachments`. Values always travel as parameters; the only text put into the SQL is
column names and property keys formatted by the store itself.

Every condition is two-valued (never NULL), so NOT works as in the reference evaluator
(bridge/model/evaluate.py), which this compiler must agree with.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from bridge.model import flags, tags
from bridge.model.codec import datetime_to_filetime, from_json
from bridge.model.errors import PropValueError
from bridge.model.proptypes import MV_INSTANCE, PropType, base_type, is_multi, prop_type
from bridge.model.restrictions import (
    BINARY_TYPES,
    FIXED_SIZES,
    STRING_TYPES,
    And,
    Bitmask,
    Comment,
    Compare,
    Content,
    Count,
    Exist,
    Not,
    Or,
    Property,
    Restriction,
    RestrictionError,
    Size,
    Sub,
)
from bridge.store import conversation, render, search_keys, texts
from bridge.store import props as P
from bridge.store.ids import IdCodec
from bridge.store.search_query import content_prefilter

log = logging.getLogger(__name__)

_SQL_OPS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "=", "ne": "<>"}

# Properties mirrored exactly by a column of `items` (NULL exactly when absent).
HOT = {
    tags.SUBJECT: "i.subject",
    tags.MESSAGE_DELIVERY_TIME: "i.received",
    tags.CLIENT_SUBMIT_TIME: "i.sent",
    tags.IMPORTANCE: "i.importance",
    tags.SENSITIVITY: "i.sensitivity",
    tags.SENDER_NAME: "i.sender_name_prop",  # kept by triggers (schema 0008)
    tags.CONVERSATION_ID: "i.conversation_id",
    # the stored topic, else the normalized subject (bridge/store/conversation.py)
    tags.CONVERSATION_TOPIC: (
        f"coalesce(json_extract(i.props, '$.\"{P.key(tags.CONVERSATION_TOPIC)}\"'), "
        "kb_topic(i.subject))"
    ),
}
# Properties whose exact text (case-folded) is a column of the full-text index.
FTS_COLUMNS = {tags.SUBJECT: "subject", tags.BODY: "body"}


def _computed(ids: IdCodec) -> dict[int, str]:
    """Properties the store computes for every item (never absent)."""
    store_eid = ids.store_entry_id().hex()
    return {
        tags.MESSAGE_CLASS: "i.message_class",
        tags.MESSAGE_FLAGS: "i.flags",
        tags.READ: f"(i.flags & {flags.MSGFLAG_READ} != 0)",
        tags.MESSAGE_SIZE: "min(i.size, 2147483647)",
        tags.MESSAGE_SIZE_EXTENDED: "i.size",
        tags.HASATTACH: "i.has_attach",
        tags.ASSOCIATED: "i.associated",
        tags.CREATION_TIME: "i.created",
        tags.LAST_MODIFICATION_TIME: "i.modified",
        tags.CHANGE_NUMBER: "i.cn",
        tags.OBJECT_TYPE: str(flags.MAPI_MESSAGE),
        tags.ACCESS: str(render.ACCESS_ALL),
        tags.ACCESS_LEVEL: str(flags.ACCESS_LEVEL_MODIFY),
        tags.ENTRYID: "kb_eid(1, i.id)",
        tags.RECORD_KEY: "kb_eid(1, i.id)",
        tags.SOURCE_KEY: "kb_sk(1, i.id)",
        tags.PARENT_ENTRYID: "kb_eid(0, i.folder_id)",
        tags.PARENT_SOURCE_KEY: "kb_sk(0, i.folder_id)",
        tags.STORE_ENTRYID: f"X'{store_eid}'",
    }


def _doc_of(tag: int, ctx: _Ctx) -> str:
    """The document that holds a property: an item's texts may be in its source."""
    return texts.doc_sql("i") if ctx.items and tag in texts.TEXT_TAGS else ctx.doc


def _convert(ptype: int, raw: str) -> str:
    """A JSON value read from a document → its comparable form (see restrictions.py)."""
    base = base_type(ptype)
    if base == PropType.SYSTIME:
        return f"kb_ft({raw})"
    if base in BINARY_TYPES:
        return f"kb_unb64({raw})"
    if base == PropType.CLSID:
        return f"upper({raw})"
    return raw


@dataclass
class Plan:
    """What a compiled query reads: for the debug log."""

    columns: set[str] = field(default_factory=set)
    json_props: set[str] = field(default_factory=set)
    subqueries: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.subqueries.append(text)


@dataclass
class _Ctx:
    """Where properties come from: the item (alias i) or a recipient/attachment row."""

    doc: str
    items: bool


class Compiler:
    """Compiles for one store (its id codec and named-property map)."""

    def __init__(self, ids: IdCodec, keywords_tag: int | None, *, fts: bool = True) -> None:
        self.computed = _computed(ids)
        self.keywords_tag = keywords_tag
        # False: no full-text prefilter (for queries over a few given items, where reading
        # the index would cost more than testing the rows)
        self.fts = fts

    # -- expressions ------------------------------------------------------------------

    def scalar(self, tag: int, plan: Plan, ctx: _Ctx | None = None) -> tuple[str, bool]:
        """(SQL of a single-valued property in comparable form, whether always present)."""
        ctx = ctx or _Ctx("i.props", True)
        if ctx.items and tag in HOT:
            plan.columns.add(HOT[tag])
            return HOT[tag], False
        if ctx.items and tag in self.computed:
            plan.columns.add(self.computed[tag])
            return self.computed[tag], True
        key = P.key(tag)
        plan.json_props.add(key)
        doc = _doc_of(tag, ctx)
        return _convert(prop_type(tag), f"json_extract({doc}, '$.\"{key}\"')"), False

    def sort_expr(self, tag: int, plan: Plan) -> str:
        sql, _ = self.scalar(tag, plan)
        if base_type(prop_type(tag)) in STRING_TYPES:
            return f"{sql} COLLATE NOCASE"
        return sql

    def mv_source(self, tag: int, plan: Plan, ctx: _Ctx) -> tuple[str, str]:
        """(FROM clause, value expression) listing the values of a multi-valued property."""
        if ctx.items and tag == self.keywords_tag:
            plan.columns.add("item_categories")
            return "item_categories c WHERE c.item_id = i.id", "c.category"
        key = P.key(tag)
        plan.json_props.add(key)
        return f"json_each({ctx.doc}, '$.\"{key}\"') je WHERE 1", _convert(
            prop_type(tag), "je.value"
        )

    # -- restrictions -----------------------------------------------------------------

    def where(self, r: Restriction | None, plan: Plan) -> tuple[str, list[Any]]:
        if r is None:
            return "1", []
        params: list[Any] = []
        return self._node(r, plan, _Ctx("i.props", True), params), params

    def _node(self, r: Restriction, plan: Plan, ctx: _Ctx, params: list[Any]) -> str:
        if isinstance(r, And):
            if not r.children:
                return "1"
            return "(" + " AND ".join(self._node(c, plan, ctx, params) for c in r.children) + ")"
        if isinstance(r, Or):
            if not r.children:
                return "0"
            return "(" + " OR ".join(self._node(c, plan, ctx, params) for c in r.children) + ")"
        if isinstance(r, Not):
            return f"(NOT {self._node(r.child, plan, ctx, params)})"
        if isinstance(r, Comment):
            return "1" if r.child is None else self._node(r.child, plan, ctx, params)
        if isinstance(r, Count):
            return self._node(r.child, plan, ctx, params)
        if isinstance(r, Sub):
            return self._sub(r, plan, ctx, params)
        if isinstance(r, Exist):
            return self._exist(r.tag & ~MV_INSTANCE, plan, ctx)
        if isinstance(r, Compare):
            return self._compare(r, plan, ctx)
        tag = r.tag & ~MV_INSTANCE
        if is_multi(prop_type(tag)):
            source, value = self.mv_source(tag, plan, ctx)
            cond = self._leaf(r, tag, value, True, params)
            plan.note(f"EXISTS over {source.split()[0]}")
            return f"EXISTS (SELECT 1 FROM {source} AND {cond})"
        pre = self._prefilter(r, tag, plan, ctx, params) if self.fts else None
        sql, present = self.scalar(tag, plan, ctx)
        cond = self._leaf(r, tag, sql, present, params)
        return f"({pre} AND {cond})" if pre else cond

    @staticmethod
    def _prefilter(
        r: Restriction, tag: int, plan: Plan, ctx: _Ctx, params: list[Any]
    ) -> str | None:
        """For CONTENT on subject or body: a condition true for every item the restriction
        matches, from the full-text index (see `content_prefilter`). Items changed after
        the index was last brought up to date (cn above search_state.cn) always pass it."""
        if not (isinstance(r, Content) and ctx.items and isinstance(r.value, str)):
            return None
        column = FTS_COLUMNS.get(tag)
        match = column and content_prefilter(r.value, r.match)
        if not match:
            return None
        plan.note(f"full-text prefilter on {column}")
        params.append(f"{{{column}}} : ({match})")
        return (
            f"i.id IN (SELECT {search_keys.item_id_sql('rowid')} FROM search_fts "
            "WHERE search_fts MATCH ? "
            "UNION ALL SELECT id FROM items WHERE cn > (SELECT cn FROM search_state))"
        )

    def _exist(self, tag: int, plan: Plan, ctx: _Ctx) -> str:
        if ctx.items and tag in HOT:
            plan.columns.add(HOT[tag])
            return f"({HOT[tag]} IS NOT NULL)"
        if ctx.items and tag in self.computed:
            return "1"
        key = P.key(tag)
        plan.json_props.add(key)
        return f"(json_type({_doc_of(tag, ctx)}, '$.\"{key}\"') IS NOT NULL)"

    def _sub(self, r: Sub, plan: Plan, ctx: _Ctx, params: list[Any]) -> str:
        if not ctx.items:
            raise RestrictionError(
                "sub: nested sub-restrictions are not supported", too_complex=True
            )
        table, alias = ("recipients", "r") if r.object == "recipients" else ("attachments", "a")
        inner = self._node(r.child, plan, _Ctx(f"{alias}.props", False), params)
        plan.note(f"EXISTS over {table}")
        return f"EXISTS (SELECT 1 FROM {table} {alias} WHERE {alias}.item_id = i.id AND {inner})"

    def _compare(self, r: Compare, plan: Plan, ctx: _Ctx) -> str:
        a, a_present = self.scalar(r.tag1 & ~MV_INSTANCE, plan, ctx)
        b, b_present = self.scalar(r.tag2 & ~MV_INSTANCE, plan, ctx)
        coll = " COLLATE NOCASE" if base_type(prop_type(r.tag1)) in STRING_TYPES else ""
        guards = [f"{x} IS NOT NULL" for x, p in ((a, a_present), (b, b_present)) if not p]
        return "(" + " AND ".join([*guards, f"{a}{coll} {_SQL_OPS[r.op]} {b}"]) + ")"

    def _leaf(self, r: Restriction, tag: int, sql: str, present: bool, params: list[Any]) -> str:
        base = base_type(prop_type(tag))
        if isinstance(r, Property):
            coll = " COLLATE NOCASE" if base in STRING_TYPES else ""
            params.append(r.value)
            cond = f"{sql}{coll} {_SQL_OPS[r.op]} ?"
        elif isinstance(r, Content):
            cond = self._content(r, sql, base, params)
        elif isinstance(r, Bitmask):
            params.append(r.mask)
            cond = f"({sql} & ?) {'<>' if r.nonzero else '='} 0"
        else:
            assert isinstance(r, Size)
            if base in STRING_TYPES:
                size = f"length(CAST({sql} AS BLOB))"
            elif base in BINARY_TYPES:
                size = f"length({sql})"
            else:
                size = str(FIXED_SIZES.get(PropType(base), 0))
            params.append(r.size)
            cond = f"{size} {_SQL_OPS[r.op]} ?"
        return f"({cond})" if present else f"({sql} IS NOT NULL AND {cond})"

    @staticmethod
    def _content(r: Content, sql: str, base: int, params: list[Any]) -> str:
        needle: str | bytes = r.value
        if isinstance(needle, str) and (r.ignore_case or r.loose):
            folded = needle.casefold()
            if folded.isascii() and _COLUMN.match(sql):
                return _folded_ascii(r.match, sql, folded, params)
            sql, needle = _fold(sql), folded
        if r.match == "full":
            params.append(needle)
            return f"{sql} = ?"
        if r.match == "prefix":
            params += [needle, needle]
            return f"substr({sql}, 1, length(?)) = ?"
        params.append(needle)
        return f"instr({sql}, ?) > 0"


_COLUMN = re.compile(r"^i\.[a-z_]+$")
_LIKE_SPECIAL = re.compile(r"([\\%_])")


# The characters other than ASCII whose case folding has ASCII characters in it (ß → ss,
# ﬁ → fi, K → k...): the only way text with characters other than ASCII can match a needle
# that folds to ASCII where LIKE does not (tests/tables/test_sql_agrees.py checks the list).
FOLDS_TO_ASCII = (
    "\u00df\u0130\u0149\u017f\u01f0\u1e96\u1e97\u1e98\u1e99\u1e9a\u1e9e\u212a"
    "\ufb00\ufb01\ufb02\ufb03\ufb04\ufb05\ufb06"
)


def _first_overlap(folded: str, needle: str) -> int | None:
    """Where in the (folded, ASCII) needle the case folding of a character can first take
    part in a match: the lowest needle index it overlaps at an offset where the characters
    that overlap are ASCII and equal; None when it cannot."""
    for d in range(-len(folded) + 1, len(needle)):
        overlap = [(j, j + d) for j in range(len(folded)) if 0 <= j + d < len(needle)]
        if all(folded[j] == needle[k] for j, k in overlap):
            return max(0, d)
    return None


def _like(match: str, needle: str) -> str:
    pattern = _LIKE_SPECIAL.sub(r"\\\1", needle)
    return {"full": pattern, "prefix": pattern + "%"}.get(match, f"%{pattern}%")


def _folded_ascii(match: str, sql: str, needle: str, params: list[Any]) -> str:
    """CONTENT with case folding for a needle that folds to ASCII, in C: LIKE compares ASCII
    case-insensitively, which is case folding on ASCII. Where text matches once folded but
    not by LIKE, part of the match comes from a character of FOLDS_TO_ASCII that can be part
    of a match of this needle; the leftmost such character of the match follows the part of
    the needle before it as ASCII text. So only text with one of those characters after that
    part is folded by kb_fold (in Python), and text without the shortest such part (the
    most of it) is ruled out by one LIKE."""
    like = f"{sql} LIKE ? ESCAPE '\\'"
    firsts = {c: _first_overlap(c.casefold(), needle) for c in FOLDS_TO_ASCII} if needle else {}
    chars = [c for c, k in firsts.items() if k is not None]
    if not chars:
        params.append(_like(match, needle))
        return f"({like})"
    common = needle[: min(k for k in firsts.values() if k is not None)]
    lead = ""
    if common:
        params.append(_like("prefix" if match != "substring" else "substring", common))
        lead = f"{like} AND "
    params.append(_like(match, needle))
    exact = {"full": "kb_fold({0}) = ?", "prefix": "substr(kb_fold({0}), 1, length(?)) = ?"}
    params += chars
    params.append(needle)
    if match == "prefix":
        params.append(needle)
    test = exact.get(match, "instr(kb_fold({0}), ?) > 0").format(sql)
    has = " OR ".join(f"instr({sql}, ?) > 0" for _ in chars)
    return f"({lead}({like} OR (({has}) AND {test})))"


def _fold(sql: str) -> str:
    """Case-folded text. ASCII text of a column is folded by SQLite's lower() (ASCII-only,
    which equals str.casefold on ASCII), anything else by kb_fold in Python."""
    if not _COLUMN.match(sql):
        return f"kb_fold({sql})"
    ascii_only = f"length(CAST({sql} AS BLOB)) = length({sql})"
    return f"(CASE WHEN {ascii_only} THEN lower({sql}) ELSE kb_fold({sql}) END)"


# -- SQL functions ----------------------------------------------------------------------


def _kb_ft(text: object) -> int | None:
    try:
        when = from_json(PropType.SYSTIME, text)
    except PropValueError:
        return None
    return datetime_to_filetime(when)  # type: ignore[arg-type]


def _kb_unb64(text: object) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _kb_fold(text: object) -> object:
    return text.casefold() if isinstance(text, str) else text


async def install_functions(conn: aiosqlite.Connection, ids: IdCodec) -> None:
    """The SQL functions compiled queries call, on a connection of the table engine."""

    def eid(kind: int, row_id: int) -> bytes:
        return ids.entry_id("item" if kind else "folder", row_id)

    def sk(kind: int, row_id: int) -> bytes:
        return ids.source_key("item" if kind else "folder", row_id)

    await conn.create_function("kb_ft", 1, _kb_ft, deterministic=True)
    await conn.create_function("kb_unb64", 1, _kb_unb64, deterministic=True)
    await conn.create_function("kb_fold", 1, _kb_fold, deterministic=True)
    await conn.create_function("kb_eid", 2, eid, deterministic=True)
    await conn.create_function("kb_sk", 2, sk, deterministic=True)
    await conn.create_function("kb_topic", 1, conversation.sql_topic, deterministic=True)


def log_plan(what: str, sql: str, params: Sequence[Any], plan: Plan) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s: columns=%s json=%s subqueries=%s sql=%s (%d params)",
            what,
            sorted(plan.columns),
            sorted(plan.json_props),
            plan.subqueries,
            sql,
            len(params),
        )
