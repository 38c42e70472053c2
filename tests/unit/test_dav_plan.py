"""The pure DAV planning step: hierarchy, pull and push decisions, with properties checked
by Hypothesis over generated states."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.sync import dav_plan as p
from bridge.upstream.dav_base import ADDRESSBOOK, CALENDAR, NOTES, TASKS

KINDS = frozenset({CALENDAR, TASKS, NOTES})

# -- hierarchy ----------------------------------------------------------------------------


def folder(
    fid: int, name: str, kind: str | None, role: str | None = None, **kw: object
) -> p.LocalFolder:
    return p.LocalFolder(fid, name, kind, role, **kw)  # type: ignore[arg-type]


def test_first_collection_of_each_kind_links_to_the_default_folder() -> None:
    remote = [
        p.RemoteCollection("/u/b-work/", "Work", CALENDAR),
        p.RemoteCollection("/u/a-home/", "Home", CALENDAR),
        p.RemoteCollection("/u/todo/", "Todo", TASKS),
        p.RemoteCollection("/u/book/", "Contacts", ADDRESSBOOK),  # not this engine's kind
    ]
    local = [
        folder(1, "Calendar", CALENDAR, "calendar"),
        folder(2, "Tasks", TASKS, "tasks"),
        folder(3, "Notes", NOTES, "notes"),
    ]
    actions = p.plan_hierarchy(remote, local, KINDS)
    assert p.LinkFolder(1, "/u/a-home/") in actions
    assert p.LinkFolder(2, "/u/todo/") in actions
    assert p.CreateLocal("/u/b-work/", "Work", CALENDAR) in actions
    assert not [a for a in actions if isinstance(a, p.CreateRemote)]  # empty Notes waits
    assert not [a for a in actions if getattr(a, "href", "") == "/u/book/"]


def test_local_folders_go_up_and_deletions_both_ways() -> None:
    remote = [p.RemoteCollection("/u/cal/", "Calendar", CALENDAR)]
    local = [
        folder(1, "Calendar", CALENDAR, "calendar", href="/u/cal/", linked_name="Calendar"),
        folder(5, "Trips", CALENDAR),
        folder(6, "Notes", NOTES, "notes", has_items=True),
        folder(7, "Gone", CALENDAR, href="/u/gone/", linked_name="Gone"),
        folder(8, "Old", CALENDAR, in_trash=True),
    ]
    actions = p.plan_hierarchy(remote, local, KINDS)
    assert p.CreateRemote(5, CALENDAR, "Trips") in actions
    assert p.CreateRemote(6, NOTES, "Notes") in actions
    assert p.RemoveLocal(7, "/u/gone/", keep_folder=False) in actions
    assert not [a for a in actions if getattr(a, "folder_id", None) == 8]
    # Deleted here → deleted there.
    assert p.plan_hierarchy(remote, local[1:2], KINDS, ["/u/cal/"]) == [
        p.DeleteRemote("/u/cal/", None),
        p.CreateRemote(5, CALENDAR, "Trips"),
    ]


def test_renames_both_ways() -> None:
    remote = [p.RemoteCollection("/u/w/", "Office", CALENDAR)]
    linked = folder(4, "Work", CALENDAR, href="/u/w/", linked_name="Work")
    assert p.plan_hierarchy(remote, [linked], KINDS) == [p.RenameLocal(4, "Office")]
    remote = [p.RemoteCollection("/u/w/", "Work", CALENDAR)]
    renamed = folder(4, "Desk", CALENDAR, href="/u/w/", linked_name="Work", renamed=True)
    assert p.plan_hierarchy(remote, [renamed], KINDS) == [p.RenameRemote(4, "/u/w/", "Desk")]


def test_disabled_collections_are_left_alone() -> None:
    remote = [p.RemoteCollection("/u/w/", "Work", CALENDAR)]
    assert p.plan_hierarchy(remote, [], KINDS, disabled=["/u/w/"]) == []
    # Not even linked to the default folder of its kind: the next one is.
    remote.append(p.RemoteCollection("/u/x/", "Home", CALENDAR))
    local = [folder(1, "Calendar", CALENDAR, "calendar")]
    assert p.plan_hierarchy(remote, local, KINDS, disabled=["/u/w/"]) == [p.LinkFolder(1, "/u/x/")]


names = st.sampled_from(["A", "B", "Work", "Home"])
kinds = st.sampled_from(sorted(KINDS))


@given(
    st.lists(st.tuples(names, kinds), max_size=6),
    st.lists(st.tuples(names, kinds, st.booleans(), st.booleans()), max_size=6),
)
def test_hierarchy_plan_links_each_collection_once(
    remote_spec: list[tuple[str, str]], local_spec: list[tuple[str, str, bool, bool]]
) -> None:
    remote = [p.RemoteCollection(f"/u/c{i}/", n, k) for i, (n, k) in enumerate(remote_spec)]
    local = []
    for i, (n, k, linked, has_items) in enumerate(local_spec):
        href = f"/u/c{i}/" if linked and i < len(remote) else None
        local.append(folder(100 + i, n, k, href=href, linked_name=n, has_items=has_items))
    actions = p.plan_hierarchy(remote, local, KINDS)
    linked_hrefs = [f.href for f in local if f.href] + [
        a.href for a in actions if isinstance(a, p.LinkFolder | p.CreateLocal)
    ]
    # Every collection ends up with exactly one folder.
    assert sorted(linked_hrefs) == sorted(c.href for c in remote)
    # A folder is linked at most once, and never both linked and created upstream.
    touched = [a.folder_id for a in actions if isinstance(a, p.LinkFolder | p.CreateRemote)]
    assert len(touched) == len(set(touched))


# -- pull ---------------------------------------------------------------------------------


def test_full_listing_fetches_only_what_changed() -> None:
    known = [
        p.KnownItem(1, "/c/a.ics", '"1"'),
        p.KnownItem(2, "/c/b.ics", '"1"'),
        p.KnownItem(3, "/c/gone.ics", '"1"'),
    ]
    listing = [
        p.Member("/c/a.ics", '"1"'),
        p.Member("/c/b.ics", '"2"'),
        p.Member("/c/new.ics", '"1"'),
    ]
    actions = p.plan_pull(known, listing, None, {}, "keep-both")
    assert actions == [p.DeleteLocal(3), p.Fetch("/c/b.ics", 2), p.Fetch("/c/new.ics")]


def test_delta_reports_only_changes() -> None:
    known = [p.KnownItem(1, "/c/a.ics", '"1"'), p.KnownItem(2, "/c/b.ics", '"1"')]
    actions = p.plan_pull(known, [p.Member("/c/a.ics", '"2"')], ["/c/zzz.ics"], {}, "keep-both")
    assert actions == [p.Fetch("/c/a.ics", 1)]  # b is not in the delta: untouched


def test_pending_upload_found_on_the_server_is_linked() -> None:
    known = [p.KnownItem(1, "/c/u.ics", None, dirty=True, pending=True)]
    assert p.plan_pull(known, [p.Member("/c/u.ics", '"7"')], None, {}, "keep-both") == [
        p.SetEtag(1, "/c/u.ics", '"7"')
    ]
    # Absent: not a deletion (the upload has not happened yet).
    assert p.plan_pull(known, [], None, {}, "keep-both") == []


def test_conflicts_by_policy() -> None:
    k = p.KnownItem(1, "/c/a.ics", '"1"', dirty=True, changed_at=100)
    changed = [p.Member("/c/a.ics", '"2"')]
    assert p.plan_pull([k], changed, [], {}, "keep-both") == [p.Fetch("/c/a.ics", 1, "keep-both")]
    assert p.plan_pull([k], changed, [], {}, "server-wins") == [
        p.Fetch("/c/a.ics", 1, "server-wins")
    ]
    assert p.plan_pull([k], changed, [], {}, "local-wins") == [
        p.SetEtag(1, "/c/a.ics", '"2"', conflict=True)
    ]
    assert p.plan_pull([k], changed, [], {}, "newer-wins", observed_at=50) == [
        p.SetEtag(1, "/c/a.ics", '"2"', conflict=True)
    ]
    assert p.plan_pull([k], changed, [], {}, "newer-wins", observed_at=500) == [
        p.Fetch("/c/a.ics", 1, "server-wins")
    ]
    # Deleted there, changed here.
    assert p.plan_pull([k], [], ["/c/a.ics"], {}, "keep-both") == [p.KeepConflict(1)]
    assert p.plan_pull([k], [], ["/c/a.ics"], {}, "local-wins") == [p.Unlink(1)]
    assert p.plan_pull([k], [], ["/c/a.ics"], {}, "server-wins") == [p.DeleteLocal(1)]


def test_skipped_resources_are_not_fetched_again_until_they_change() -> None:
    skipped = {"/c/bad.ics": '"1"'}
    assert p.plan_pull([], [p.Member("/c/bad.ics", '"1"')], None, skipped, "keep-both") == []
    assert p.plan_pull([], [p.Member("/c/bad.ics", '"2"')], None, skipped, "keep-both") == [
        p.Unskip("/c/bad.ics"),
        p.Fetch("/c/bad.ics"),
    ]
    assert p.plan_pull([], [], None, skipped, "keep-both") == [p.Unskip("/c/bad.ics")]


etags = st.sampled_from(['"1"', '"2"', '"3"', None])
hrefs = st.sampled_from([f"/c/{n}.ics" for n in "abcdefgh"])
policies = st.sampled_from(p.POLICIES)


@given(
    st.dictionaries(hrefs, st.tuples(etags, st.booleans(), st.booleans()), max_size=8),
    st.dictionaries(hrefs, etags, max_size=8),
    policies,
)
def test_full_listing_plan_is_complete_and_never_duplicates(
    known_spec: dict[str, tuple[str | None, bool, bool]],
    listing_spec: dict[str, str | None],
    policy: str,
) -> None:
    known = [
        p.KnownItem(i, h, e, dirty=d, pending=pend)
        for i, (h, (e, d, pend)) in enumerate(sorted(known_spec.items()))
    ]
    listing = [p.Member(h, e) for h, e in sorted(listing_spec.items())]
    actions = p.plan_pull(known, listing, None, {}, policy)
    by_href = {k.href: k for k in known}
    fetched_new = [a.href for a in actions if isinstance(a, p.Fetch) and a.item_id is None]
    # A resource we already have is never fetched as new (no duplicates).
    assert not set(fetched_new) & set(by_href)
    # Every unknown resource is fetched.
    assert set(fetched_new) == set(listing_spec) - set(by_href)
    # At most one action per item; a clean item gone upstream is deleted locally.
    ids = [a.item_id for a in actions if hasattr(a, "item_id") and a.item_id is not None]
    assert len(ids) == len(set(ids))
    for k in known:
        if k.href not in listing_spec and not k.pending and not k.dirty:
            assert p.DeleteLocal(k.item_id) in actions
        if k.href in listing_spec and not k.dirty and not k.pending:
            same = listing_spec[k.href] is not None and listing_spec[k.href] == k.etag
            assert (p.Fetch(k.href, k.item_id) in actions) == (not same)
        if k.dirty and policy == "keep-both":
            assert p.DeleteLocal(k.item_id) not in actions  # nothing changed here is lost


# -- push ---------------------------------------------------------------------------------

REF = p.ItemRef("/c/a.ics", '"1"', "/c/", "a")


def test_push_plans() -> None:
    assert p.plan_push(None, True, "/c/", True) == [p.Create("/c/")]
    assert p.plan_push(REF, True, "/c/", True) == [p.Update("/c/a.ics", '"1"')]
    assert p.plan_push(REF, True, "/c/", False) == []
    assert p.plan_push(REF, False, None, False) == [p.Delete("/c/a.ics", '"1"')]
    assert p.plan_push(REF, True, None, False) == [p.Delete("/c/a.ics", '"1"')]
    assert p.plan_push(REF, True, "/d/", False) == [p.Create("/d/"), p.Delete("/c/a.ics", '"1"')]
    assert p.plan_push(None, False, None, True) == []


def test_interrupted_move_is_finished() -> None:
    pending = p.ItemRef(
        "/d/a.ics", None, "/d/", "a", pending=True, moved_from="/c/a.ics", moved_etag='"1"'
    )
    assert p.plan_push(pending, True, "/d/", True) == [
        p.Create("/d/"),
        p.Delete("/c/a.ics", '"1"'),
    ]


def test_move_linked_on_pull_still_deletes_the_old_place() -> None:
    linked = p.ItemRef("/d/a.ics", '"5"', "/d/", "a", moved_from="/c/a.ics", moved_etag='"1"')
    assert p.plan_push(linked, True, "/d/", False) == [p.Delete("/c/a.ics", '"1"')]
    assert p.plan_push(linked, True, "/d/", True) == [
        p.Update("/d/a.ics", '"5"'),
        p.Delete("/c/a.ics", '"1"'),
    ]


@given(
    st.one_of(
        st.none(),
        st.builds(
            p.ItemRef, hrefs, etags, st.sampled_from(["/c/", "/d/"]), st.just("u"), st.booleans()
        ),
    ),
    st.booleans(),
    st.sampled_from([None, "/c/", "/d/"]),
    st.booleans(),
)
def test_push_plan_is_minimal_and_consistent(
    ref: p.ItemRef | None, exists: bool, target: str | None, changed: bool
) -> None:
    actions = p.plan_push(ref, exists, target if exists else None, changed)
    creates = [a for a in actions if isinstance(a, p.Create)]
    deletes = [a for a in actions if isinstance(a, p.Delete)]
    assert len(creates) <= 1
    if creates:
        assert exists and target is not None and creates[0].collection == target
    if not exists or target is None:
        assert not creates and not [a for a in actions if isinstance(a, p.Update)]
        assert (ref is not None) == bool(deletes)
    if ref is None:
        assert not deletes
