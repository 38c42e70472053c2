"""What a view shows: columns, restriction, sort keys and category levels (the
SSortOrderSet of MAPI.md §2), validated once when the view is created."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.model import tags
from bridge.model.keys import TaggedKey, parse_key
from bridge.model.proptypes import MV_INSTANCE, MVI_FLAG, PropType, is_multi, make_tag, prop_type
from bridge.model.restrictions import Resolver, Restriction, RestrictionError
from bridge.store.named import NamedMap

ORDERS = ("asc", "desc", "combine", "categ_max", "categ_min")
MAX_KEYS = 16
MAX_COLUMNS = 512


@dataclass(frozen=True, slots=True)
class Level:
    """One category level: the key indexes that make it (several with COMBINE) and the
    aggregate (key index into `ViewSpec.aggregates`, "max" | "min") that orders its groups."""

    keys: tuple[int, ...]
    aggregate: tuple[int, str] | None = None


@dataclass(frozen=True, slots=True)
class ViewSpec:
    columns: tuple[int, ...]
    restriction: Restriction | None
    keys: tuple[tuple[int, bool], ...]  # ordering keys: (tag, descending)
    levels: tuple[Level, ...]
    aggregates: tuple[int, ...]  # tags of CATEG_MAX / CATEG_MIN columns
    expanded: int
    mvi: int | None  # the MVI column (tag with 0x3000), if any

    @property
    def depth(self) -> int:
        return len(self.levels)

    def category_tags(self, level: int) -> list[int]:
        """Tags of the category columns of levels 0..level."""
        return [self.keys[k][0] for lv in self.levels[: level + 1] for k in lv.keys]


def is_mvi(tag: int) -> bool:
    return prop_type(tag) & MVI_FLAG == MVI_FLAG


def build(
    columns: list[int],
    restriction: Restriction | None,
    keys: list[tuple[int, str]],
    categories: int = 0,
    expanded: int | None = None,
) -> ViewSpec:
    """Validate a sort order set; raises RestrictionError (a 400 for the client)."""
    if len(keys) > MAX_KEYS or len(columns) > MAX_COLUMNS:
        raise RestrictionError(f"at most {MAX_KEYS} sort keys and {MAX_COLUMNS} columns")
    mvi = {t for t in [*columns, *(t for t, _ in keys)] if is_mvi(t)}
    if len(mvi) > 1:
        raise RestrictionError("only one MVI column per view is supported", too_complex=True)
    ordering: list[tuple[int, bool]] = []
    levels: list[Level] = []
    aggregates: list[int] = []
    consumed = 0
    for tag, order in keys:
        if order not in ORDERS:
            raise RestrictionError(f"sort order must be one of {', '.join(ORDERS)}")
        if is_multi(prop_type(tag)) and not is_mvi(tag):
            raise RestrictionError(
                "sorting on a multi-valued property needs the MVI flag (type | 0x3000)"
            )
        if tag == tags.CONTENT_UNREAD:
            raise RestrictionError("PidTagContentUnreadCount cannot be a sort key")
        if order in ("categ_max", "categ_min"):
            if not levels:
                raise RestrictionError(f"{order} must follow a category key")
            last = levels[-1]
            levels[-1] = Level(last.keys, (len(aggregates), order[6:]))
            aggregates.append(tag)
            continue
        if order == "combine":
            if not levels or consumed >= categories:
                raise RestrictionError("combine must follow a category key")
            ordering.append((tag, False))
            levels[-1] = Level((*levels[-1].keys, len(ordering) - 1), levels[-1].aggregate)
            consumed += 1
            continue
        ordering.append((tag, order == "desc"))
        if consumed < categories:
            levels.append(Level((len(ordering) - 1,)))
            consumed += 1
    if consumed != categories:
        raise RestrictionError(f"categories is {categories} but only {consumed} keys can be")
    if expanded is None:
        expanded = len(levels)
    if not 0 <= expanded <= len(levels):
        raise RestrictionError("expanded must be between 0 and the number of category levels")
    return ViewSpec(
        tuple(columns),
        restriction,
        tuple(ordering),
        tuple(levels),
        tuple(aggregates),
        expanded,
        next(iter(mvi)) if mvi else None,
    )


def mv_tag(tag: int) -> int:
    """The stored tag of an MVI column."""
    return tag & ~MV_INSTANCE


def resolver(named: NamedMap) -> Resolver:
    """Property names → tags of this store. A named property the store has never mapped
    gets prop id 0: it is absent from every row, so tests on it are false."""

    def resolve(name: str) -> int:
        key = parse_key(name)
        if isinstance(key, TaggedKey):
            return key.tag
        mapped = named.lookup(key.prop)
        ptype = key.ptype or (mapped[1] if mapped else None) or PropType.UNICODE
        return make_tag(mapped[0] if mapped else 0, ptype)

    return resolve
