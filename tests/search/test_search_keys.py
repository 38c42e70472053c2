"""Search keys: the Python and the SQL form agree, and keys sort as (second, id)."""

from __future__ import annotations

import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from bridge.store import search_keys

RECEIVED = st.one_of(st.none(), st.integers(min_value=-(2**62), max_value=2**62))
ITEM_ID = st.integers(min_value=0, max_value=search_keys.MAX_ITEM_ID)


@given(RECEIVED, ITEM_ID)
def test_sql_and_python_agree(received: int | None, item_id: int) -> None:
    db = sqlite3.connect(":memory:")
    sql = f"SELECT {search_keys.key_sql('?', '?')}, {search_keys.item_id_sql('?')}"
    k = search_keys.key(received, item_id)
    got, back = db.execute(sql, (received, item_id, k)).fetchone()
    assert got == k and back == item_id
    assert search_keys.key_second(k) == search_keys.second_of(received)
    low, high = search_keys.second_range(search_keys.key_second(k))
    assert low <= k < high


@given(RECEIVED, ITEM_ID, RECEIVED, ITEM_ID)
def test_keys_sort_by_second_then_id(r1: int | None, i1: int, r2: int | None, i2: int) -> None:
    k1, k2 = search_keys.key(r1, i1), search_keys.key(r2, i2)
    s1, s2 = search_keys.second_of(r1), search_keys.second_of(r2)
    assert (k1 < k2) == ((s1, i1) < (s2, i2))
