"""Decide, then act: pure functions that turn (stored state, local changes, upstream state)
into actions. Nothing here does I/O; the engine runs the actions and records the outcome.

Flags are compared as sets of IMAP flag names. The store's side of a message is mapped to
such a set (`\\Seen` ↔ read, `\\Flagged` ↔ follow-up flag, `\\Answered`/`$Forwarded` ↔ last
verb, other keywords ↔ categories); the set last seen on the server is the merge base.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FlagSet = frozenset[str]

SEEN, FLAGGED, ANSWERED, FORWARDED = "\\Seen", "\\Flagged", "\\Answered", "$Forwarded"
# Flags whose meaning the bridge maps; any other system flag ("\\Recent", "\\Draft",
# "$MDNSent", ...) is left alone in both directions.
MAPPED = frozenset({SEEN, FLAGGED, ANSWERED, FORWARDED})
POLICIES = ("keep-both", "server-wins", "local-wins", "newer-wins")

FLAG_STATUS_FLAGGED = 2
VERB_REPLY, VERB_REPLY_ALL, VERB_FORWARD = 102, 103, 104


def is_category(flag: str) -> bool:
    """An IMAP keyword the user sees as a category (not a system or `$` flag)."""
    return bool(flag) and flag[0] not in "\\$"


def relevant(flags: Iterable[str]) -> FlagSet:
    """The part of a server flag set that the bridge maps."""
    return frozenset(f for f in flags if f in MAPPED or is_category(f))


def local_flags(
    read: bool,
    flag_status: int | None,
    last_verb: int | None,
    categories: Iterable[str],
    base: FlagSet = frozenset(),
) -> FlagSet:
    """The flags an item's properties stand for. \\Answered and $Forwarded add up, but an
    item has one last verb: while it has one, the verb flags of `base` (the server's, as
    last seen) stay, so a message both answered and forwarded keeps both."""
    out = {c for c in categories if is_category(c)}
    if read:
        out.add(SEEN)
    if flag_status == FLAG_STATUS_FLAGGED:
        out.add(FLAGGED)
    if last_verb in (VERB_REPLY, VERB_REPLY_ALL):
        out.add(ANSWERED)
    if last_verb == VERB_FORWARD:
        out.add(FORWARDED)
    if last_verb in (VERB_REPLY, VERB_REPLY_ALL, VERB_FORWARD):
        out |= base & {ANSWERED, FORWARDED}
    return frozenset(out)


def merge_flags(base: FlagSet, local: FlagSet, remote: FlagSet, policy: str) -> FlagSet:
    """Three-way merge flag by flag: a flag changed on one side only takes that side's value;
    under `server-wins` the server's set replaces local changes."""
    if policy == "server-wins":
        return remote
    out = set()
    for flag in base | local | remote:
        in_local, in_base = flag in local, flag in base
        if in_local != in_base:
            if in_local:
                out.add(flag)
        elif flag in remote:
            out.add(flag)
    return frozenset(out)


# -- pull ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """A local item linked to a UID of the mailbox being pulled."""

    item_id: int
    uid: int
    base: FlagSet  # the server's flags when last synced
    local: FlagSet
    dirty: bool  # has local changes not yet confirmed by the server
    changed_at: int | None = None  # FILETIME of the latest pending local change
    moving: bool = False  # a MOVE of it was sent, its answer not kept (`syncstate.MOVING`)


@dataclass(frozen=True)
class Listing:
    """What the server reported: flags of new and changed messages (all of them on a full
    listing), the UIDs present (None when unknown) and the UIDs known to be gone."""

    changed: Mapping[int, FlagSet]
    present: frozenset[int] | None = None
    vanished: frozenset[int] = frozenset()
    observed_at: int | None = None  # FILETIME at which the server reported this state

    def gone(self, uid: int) -> bool:
        """Whether the message `uid` is known to be gone."""
        return uid in self.vanished or (self.present is not None and uid not in self.present)


@dataclass(frozen=True)
class Fetch:
    uid: int


@dataclass(frozen=True)
class SetFlags:
    """Apply `local` to the item (when it differs) and remember `base`."""

    item_id: int
    uid: int
    local: FlagSet
    base: FlagSet
    local_changed: bool


@dataclass(frozen=True)
class DeleteLocal:
    item_id: int


@dataclass(frozen=True)
class KeepConflict:
    """The message is gone upstream but was changed locally: keep the local version in
    Sync Issues/Conflicts."""

    item_id: int


@dataclass(frozen=True)
class Unlink:
    """Gone upstream; the local change wins, so the item is uploaded again."""

    item_id: int


@dataclass(frozen=True)
class FlagConflict:
    """Flags changed on both sides in incompatible ways. The item gets `local` and
    remembers `base` (the server's set); `local_wins` says whose state that is (a winning
    local state is then pushed over the server's). With `keep_copy` the local version is
    first copied into Sync Issues/Conflicts, linked to the item that won."""

    item_id: int
    uid: int
    local: FlagSet
    base: FlagSet
    local_wins: bool
    keep_copy: bool


PullAction = Fetch | SetFlags | DeleteLocal | KeepConflict | Unlink | FlagConflict


def in_conflict(k: Known, remote: FlagSet) -> bool:
    """Changed here (pending) and on the server since the last sync, to different sets."""
    return k.dirty and k.local != k.base and remote != k.base and k.local != remote


def local_is_newer(changed_at: int | None, observed_at: int | None) -> bool:
    """`newer-wins`: is the local change newer than the server's?

    IMAP gives no modification time: INTERNALDATE is when a message arrived, MODSEQ orders
    changes without a clock. So the server's change is dated by the moment the bridge
    observed it (`Listing.observed_at`, taken when the mailbox was selected for the pull
    that reports it), and the local change by the time it was made (`Known.changed_at`,
    the latest pending journal entry of the item). A server change is known no later than
    it is observed, so an unknown time on either side lets the server win."""
    if changed_at is None or observed_at is None:
        return False
    return changed_at > observed_at


def local_wins(policy: str, k: Known, observed_at: int | None) -> bool:
    if policy == "local-wins":
        return True
    if policy == "newer-wins":
        return local_is_newer(k.changed_at, observed_at)
    return False  # keep-both and server-wins: the upstream wins in place


def plan_pull(known: Iterable[Known], listing: Listing, policy: str) -> list[PullAction]:
    actions: list[PullAction] = []
    by_uid = {k.uid: k for k in known}
    gone = set(listing.vanished)
    if listing.present is not None:
        gone |= set(by_uid) - listing.present
    for uid in sorted(gone & set(by_uid)):
        gone_item = by_uid[uid]
        if gone_item.moving:
            continue  # gone by that MOVE: not deleted; the push finds where it went
        if not gone_item.dirty or policy == "server-wins":
            actions.append(DeleteLocal(gone_item.item_id))
        elif policy == "keep-both":
            actions.append(KeepConflict(gone_item.item_id))
        elif local_wins(policy, gone_item, listing.observed_at):
            actions.append(Unlink(gone_item.item_id))
        else:
            actions.append(DeleteLocal(gone_item.item_id))
    for uid in sorted(listing.changed):
        if uid in gone:
            continue
        remote = relevant(listing.changed[uid])
        k = by_uid.get(uid)
        if k is None:
            actions.append(Fetch(uid))
            continue
        if in_conflict(k, remote):
            wins = local_wins(policy, k, listing.observed_at)
            actions.append(
                FlagConflict(
                    k.item_id,
                    uid,
                    k.local if wins else remote,
                    remote,
                    wins,
                    policy == "keep-both",
                )
            )
            continue
        merged = merge_flags(k.base, k.local, remote, policy)
        if merged != k.local or remote != k.base:
            actions.append(SetFlags(k.item_id, uid, merged, remote, merged != k.local))
    return actions


@dataclass(frozen=True)
class Deleted:
    """A local deletion not yet pushed: the message it removes is at `uid` of the mailbox
    being pulled; `base` are its flags as last seen on the server."""

    entry_ids: tuple[int, ...]
    uid: int
    base: FlagSet
    changed_at: int | None = None  # FILETIME of the deletion


def plan_deleted(
    deleted: Iterable[Deleted], listing: Listing, policy: str
) -> tuple[frozenset[int], list[Deleted]]:
    """Messages deleted here that the server still reports: (UIDs not to fetch again, the
    push expunges them; deletions to drop because the server changed the message since,
    so it comes back).

    Deleted here and changed on the server is a conflict: with keep-both and server-wins
    the server's change wins (nothing is lost: the message is fetched again); local-wins
    deletes it; newer-wins compares the deletion with the moment the change was seen."""
    skip: set[int] = set()
    undone: list[Deleted] = []
    for d in deleted:
        if d.uid not in listing.changed:
            continue
        changed = relevant(listing.changed[d.uid]) != d.base
        server_wins = policy in ("keep-both", "server-wins") or (
            policy == "newer-wins" and not local_is_newer(d.changed_at, listing.observed_at)
        )
        if changed and server_wins:
            undone.append(d)
        else:
            skip.add(d.uid)
    return frozenset(skip), undone


EMPTIED_HOLD = 10


def looks_emptied(linked: int, exists: int, same_uidvalidity: bool) -> bool:
    """A mailbox that held many messages comes back empty under the same UIDVALIDITY: more
    likely a broken server or a wrong account than the user deleting everything, so its
    messages are not deleted here until the user confirms."""
    return same_uidvalidity and exists == 0 and linked >= EMPTIED_HOLD


def adopt(uploads: Mapping[str, int], server: Mapping[int, str]) -> dict[int, int]:
    """Local items waiting to be uploaded (Message-ID → item id) that the server already
    has among its new messages (UID → Message-ID): item id → UID, the lowest UID of a
    Message-ID first, each UID given once."""
    out: dict[int, int] = {}
    for uid in sorted(server):
        item_id = uploads.get(server[uid])
        if item_id is not None and item_id not in out:
            out[item_id] = uid
    return out


# -- push ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """Where an item lives upstream."""

    mailbox: str
    uidvalidity: int
    uid: int
    base: FlagSet

    @property
    def at(self) -> tuple[str, int, int]:
        """The message it names (its flags aside)."""
        return self.mailbox, self.uidvalidity, self.uid


@dataclass(frozen=True)
class Append:
    mailbox: str
    flags: FlagSet


@dataclass(frozen=True)
class Move:
    ref: Ref
    mailbox: str


@dataclass(frozen=True)
class StoreFlags:
    add: FlagSet
    remove: FlagSet


@dataclass(frozen=True)
class Expunge:
    ref: Ref


PushAction = Append | Move | StoreFlags | Expunge


def plan_push(
    ref: Ref | None,
    exists: bool,
    target: str | None,
    local: FlagSet,
    content_changed: bool,
) -> list[PushAction]:
    """Bring one dirty item's upstream copy to its local state.

    `target` is the mailbox of the item's current folder (None: not a synced folder); the
    actions act on the current state, so replaying them after a crash is harmless."""
    if not exists or target is None:
        return [Expunge(ref)] if ref is not None else []
    if ref is None:
        return [Append(target, local)]
    if content_changed:
        return [Append(target, local), Expunge(ref)]
    actions: list[PushAction] = []
    if ref.mailbox != target:
        actions.append(Move(ref, target))
    add, remove = local - ref.base, ref.base - local
    if add or remove:
        actions.append(StoreFlags(frozenset(add), frozenset(remove)))
    return actions
