"""The pure planning step of the sync engine, driven by Hypothesis on small random states."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.sync import plan

FLAGS = st.frozensets(st.sampled_from(["\\Seen", "\\Flagged", "\\Answered", "$Forwarded", "Work"]))


@given(FLAGS, FLAGS, FLAGS)
def test_merge_keeps_each_sides_changes(
    base: frozenset[str], local: frozenset[str], remote: frozenset[str]
) -> None:
    merged = plan.merge_flags(base, local, remote, "keep-both")
    for flag in base | local | remote:
        if (flag in local) != (flag in base):
            assert (flag in merged) == (flag in local)  # a local change is never lost
        else:
            assert (flag in merged) == (flag in remote)  # otherwise the server's value


@given(FLAGS, FLAGS)
def test_merge_without_local_change_is_remote(base: frozenset[str], remote: frozenset[str]) -> None:
    assert plan.merge_flags(base, base, remote, "keep-both") == remote
    assert plan.merge_flags(base, remote, base, "server-wins") == base


@st.composite
def states(draw: st.DrawFn) -> tuple[list[plan.Known], plan.Listing, bool]:
    uids = draw(st.lists(st.integers(1, 30), unique=True, max_size=8))
    known = [
        plan.Known(i + 100, uid, draw(FLAGS), draw(FLAGS), draw(st.booleans()))
        for i, uid in enumerate(uids)
    ]
    server = draw(st.dictionaries(st.integers(1, 30), FLAGS, max_size=10))
    full = draw(st.booleans())
    if full:
        return known, plan.Listing(server, frozenset(server)), True
    vanished = frozenset(u for u in uids if u not in server)
    return known, plan.Listing(server, vanished=vanished), False


@given(states(), st.sampled_from(plan.POLICIES))
def test_pull_plan_converges(
    state: tuple[list[plan.Known], plan.Listing, bool], policy: str
) -> None:
    known, listing, _ = state
    actions = plan.plan_pull(known, listing, policy)
    by_uid = {k.uid: k for k in known}
    fetched = [a.uid for a in actions if isinstance(a, plan.Fetch)]
    # every server message ends up in the cache exactly once
    assert len(fetched) == len(set(fetched))
    assert set(fetched) == set(listing.changed) - set(by_uid)
    touched = [getattr(a, "item_id", None) for a in actions if not isinstance(a, plan.Fetch)]
    assert len(touched) == len(set(touched))  # one decision per item
    for action in actions:
        if isinstance(action, plan.SetFlags):
            k = next(k for k in known if k.item_id == action.item_id)
            assert action.base == plan.relevant(listing.changed[k.uid])
        if isinstance(action, plan.DeleteLocal):
            k = next(k for k in known if k.item_id == action.item_id)
            # a local change is dropped only when the policy lets the server win
            assert not k.dirty or policy in ("server-wins", "newer-wins")
        if isinstance(action, plan.KeepConflict):
            assert policy == "keep-both"
        if isinstance(action, plan.FlagConflict):
            k = next(k for k in known if k.item_id == action.item_id)
            assert plan.in_conflict(k, action.base)
            assert action.keep_copy == (policy == "keep-both")
            assert action.local == (k.local if action.local_wins else action.base)


@given(FLAGS, FLAGS, st.booleans())
def test_push_plan_reaches_local_state(
    base: frozenset[str], local: frozenset[str], moved: bool
) -> None:
    ref = plan.Ref("INBOX", 7, 3, base)
    actions = plan.plan_push(ref, True, "Archive" if moved else "INBOX", local, False)
    flags = set(base)
    for action in actions:
        if isinstance(action, plan.StoreFlags):
            flags = (flags | action.add) - action.remove
    assert flags == set(local)
    assert any(isinstance(a, plan.Move) for a in actions) == moved


def test_push_plan_cases() -> None:
    ref = plan.Ref("INBOX", 7, 3, frozenset())
    assert plan.plan_push(None, True, "Drafts", frozenset({"\\Seen"}), False) == [
        plan.Append("Drafts", frozenset({"\\Seen"}))
    ]
    assert plan.plan_push(ref, False, None, frozenset(), False) == [plan.Expunge(ref)]
    assert plan.plan_push(ref, True, None, frozenset(), False) == [plan.Expunge(ref)]
    assert plan.plan_push(None, False, None, frozenset(), False) == []
    assert plan.plan_push(ref, True, "INBOX", frozenset(), True) == [
        plan.Append("INBOX", frozenset()),
        plan.Expunge(ref),
    ]


def test_flag_mapping() -> None:
    fs = plan.local_flags(True, 2, 104, ["Work", "$Junk"])
    assert fs == {"\\Seen", "\\Flagged", "$Forwarded", "Work"}
    assert plan.relevant({"\\Recent", "\\Seen", "$MDNSent", "Home"}) == {"\\Seen", "Home"}


# -- conflicts (DESIGN.md §4) ---------------------------------------------------------------

BASE = frozenset({"\\Seen"})
LOCAL = frozenset({"\\Seen", "\\Flagged"})  # flagged here
REMOTE = frozenset({"Work"})  # marked unread and categorised on the server


def conflict(
    policy: str, changed_at: int | None = 100, observed_at: int | None = 200
) -> list[plan.PullAction]:
    known = [plan.Known(7, 3, BASE, LOCAL, True, changed_at)]
    return plan.plan_pull(known, plan.Listing({3: REMOTE}, observed_at=observed_at), policy)


@pytest.mark.parametrize("policy", ["keep-both", "server-wins", "local-wins", "newer-wins"])
def test_a_message_gone_by_a_move_of_ours_is_not_deleted_here(policy: str) -> None:
    """Its MOVE was sent and the answer lost: its absence is no deletion on the server."""
    known = [plan.Known(7, 3, BASE, LOCAL, True, 100, moving=True)]
    assert plan.plan_pull(known, plan.Listing({}, vanished=frozenset({3})), policy) == []
    known = [plan.Known(7, 3, BASE, LOCAL, True, 100)]
    assert plan.plan_pull(known, plan.Listing({}, vanished=frozenset({3})), policy) != []


def test_keep_both_server_wins_in_place_and_keeps_a_copy() -> None:
    assert conflict("keep-both") == [plan.FlagConflict(7, 3, REMOTE, REMOTE, False, True)]


def test_server_wins_without_copy() -> None:
    assert conflict("server-wins") == [plan.FlagConflict(7, 3, REMOTE, REMOTE, False, False)]


def test_local_wins_keeps_local_state_to_push() -> None:
    assert conflict("local-wins") == [plan.FlagConflict(7, 3, LOCAL, REMOTE, True, False)]


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_newer_wins_compares_local_change_with_server_observation(
    changed_at: int, observed_at: int
) -> None:
    (action,) = conflict("newer-wins", changed_at, observed_at)
    assert isinstance(action, plan.FlagConflict) and not action.keep_copy
    assert action.local_wins == (changed_at > observed_at)
    assert action.local == (LOCAL if changed_at > observed_at else REMOTE)
    assert action.base == REMOTE


def test_newer_wins_without_times_lets_the_server_win() -> None:
    assert conflict("newer-wins", None, 200)[0] == plan.FlagConflict(
        7, 3, REMOTE, REMOTE, False, False
    )
    assert conflict("newer-wins", 300, None)[0] == plan.FlagConflict(
        7, 3, REMOTE, REMOTE, False, False
    )


@given(FLAGS, FLAGS, FLAGS, st.sampled_from(plan.POLICIES))
def test_compatible_changes_merge_under_every_policy(
    base: frozenset[str], local: frozenset[str], remote: frozenset[str], policy: str
) -> None:
    """One side unchanged, or both sides made the same change: no conflict, a merge."""
    k = plan.Known(7, 3, base, local, True, 1)
    actions = plan.plan_pull([k], plan.Listing({3: remote}, observed_at=2), policy)
    conflicted = any(isinstance(a, plan.FlagConflict) for a in actions)
    assert conflicted == (local != base and remote != base and local != remote)


@given(st.sampled_from(plan.POLICIES), st.integers(0, 10), st.integers(0, 10))
def test_deleted_upstream_changed_locally(policy: str, changed_at: int, observed_at: int) -> None:
    k = plan.Known(7, 3, BASE, LOCAL, True, changed_at)
    (action,) = plan.plan_pull(
        [k], plan.Listing({}, vanished=frozenset({3}), observed_at=observed_at), policy
    )
    expected: plan.PullAction = {
        "keep-both": plan.KeepConflict(7),
        "server-wins": plan.DeleteLocal(7),
        "local-wins": plan.Unlink(7),
        "newer-wins": plan.Unlink(7) if changed_at > observed_at else plan.DeleteLocal(7),
    }[policy]
    assert action == expected


# -- uploads found again, deletions made here, emptied mailboxes ----------------------------


def test_adopt_links_each_upload_to_one_new_uid() -> None:
    uploads = {"<a@x>": 1, "<b@x>": 2}
    server = {12: "<a@x>", 10: "<a@x>", 11: "<other@x>"}
    assert plan.adopt(uploads, server) == {1: 10}


def test_deleted_here_unchanged_on_the_server_is_not_fetched_again() -> None:
    gone = plan.Deleted((7,), uid=3, base=frozenset({plan.SEEN}))
    listing = plan.Listing({3: frozenset({plan.SEEN, "\\Recent"}), 4: frozenset()})
    for policy in plan.POLICIES:
        assert plan.plan_deleted([gone], listing, policy) == (frozenset({3}), [])


def test_deleted_here_changed_on_the_server_per_policy() -> None:
    gone = plan.Deleted((7,), uid=3, base=frozenset(), changed_at=100)
    changed = plan.Listing({3: frozenset({plan.FLAGGED})}, observed_at=200)
    assert plan.plan_deleted([gone], changed, "keep-both") == (frozenset(), [gone])
    assert plan.plan_deleted([gone], changed, "server-wins") == (frozenset(), [gone])
    assert plan.plan_deleted([gone], changed, "local-wins") == (frozenset({3}), [])
    assert plan.plan_deleted([gone], changed, "newer-wins") == (frozenset(), [gone])
    later = plan.Listing({3: frozenset({plan.FLAGGED})}, observed_at=50)
    assert plan.plan_deleted([gone], later, "newer-wins") == (frozenset({3}), [])
    # not reported by the server (expunged there too, or unchanged on a QRESYNC pull)
    assert plan.plan_deleted([gone], plan.Listing({}), "keep-both") == (frozenset(), [])


def test_looks_emptied() -> None:
    many = plan.EMPTIED_HOLD
    assert plan.looks_emptied(many, 0, True)
    assert not plan.looks_emptied(many, 1, True)  # not empty
    assert not plan.looks_emptied(many, 0, False)  # a new mailbox, relinked by Message-ID
    assert not plan.looks_emptied(many - 1, 0, True)  # few messages: deleting them is ordinary


def test_verb_flags_add_up_over_the_servers() -> None:
    both = frozenset({plan.ANSWERED, plan.FORWARDED})
    assert plan.local_flags(False, None, plan.VERB_REPLY, (), both) == both
    assert plan.local_flags(False, None, plan.VERB_FORWARD, (), {plan.ANSWERED}) == both
    # no last verb here (cleared): no verb flag stays
    assert plan.local_flags(True, None, None, (), both) == {plan.SEEN}
