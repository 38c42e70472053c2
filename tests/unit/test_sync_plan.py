"""The pure planning step of the sync engine, driven by Hypothesis on small random states."""

from __future__ import annotations

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
            assert not k.dirty or policy == "server-wins"  # local changes are not dropped
        if isinstance(action, plan.KeepConflict):
            assert policy == "keep-both"


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
