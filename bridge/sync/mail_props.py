"""IMAP flags as item properties: what the engine sets on an item to give it a flag set,
and the flag set a cached item stands for."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridge.formats.mime import KEYWORDS
from bridge.model import tags
from bridge.store.items import NewItem
from bridge.store.syncstate import LocalItem
from bridge.sync import plan


def flag_props(fs: plan.FlagSet, last_verb: int | None) -> tuple[dict[int, Any], list[int]]:
    """Properties (set, delete) that give an item the flags `fs`."""
    set_props: dict[int, Any] = {tags.READ: plan.SEEN in fs}
    delete: list[int] = []
    if plan.FLAGGED in fs:
        set_props[tags.FLAG_STATUS] = plan.FLAG_STATUS_FLAGGED
    else:
        delete.append(tags.FLAG_STATUS)
    if plan.ANSWERED in fs:
        keep = last_verb in (plan.VERB_REPLY, plan.VERB_REPLY_ALL)
        set_props[tags.LAST_VERB_EXECUTED] = last_verb if keep else plan.VERB_REPLY
    elif plan.FORWARDED in fs:
        set_props[tags.LAST_VERB_EXECUTED] = plan.VERB_FORWARD
    elif last_verb in (plan.VERB_REPLY, plan.VERB_REPLY_ALL, plan.VERB_FORWARD):
        delete.append(tags.LAST_VERB_EXECUTED)
    return set_props, delete


def apply_flags(item: NewItem, server_flags: Iterable[str]) -> None:
    """Give a new item the flags and keywords (categories) the server gave its message."""
    fs = plan.relevant(server_flags)
    set_props, _ = flag_props(fs, None)
    item.props.update(set_props)
    cats = categories(fs)
    if cats:
        item.named[KEYWORDS] = cats
    else:
        item.named.pop(KEYWORDS, None)


def categories(fs: plan.FlagSet) -> list[str]:
    return sorted(f for f in fs if plan.is_category(f))


def flags_of(item: LocalItem) -> plan.FlagSet:
    """The flags a cached item stands for, over the server's as last seen."""
    base = frozenset(item.upstream.get("flags") or ()) if item.upstream else frozenset()
    return plan.local_flags(item.read, item.flag_status, item.last_verb, item.categories, base)
