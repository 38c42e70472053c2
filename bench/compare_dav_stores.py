"""Compare the items two DAV syncs stored: every column and property of every item, matched
by upstream href, with named property ids resolved to their names (each store numbers
them itself) and store-assigned values (ids, times, change numbers) left out.

    .venv/bin/python bench/compare_dav_stores.py A/store.sqlite B/store.sqlite

Prints the number of items compared and the first differences; exits 1 when any.
Used to check that a faster sync stores exactly what the slower one did.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any

# Set by the store when the row is written, not taken from the resource.
STORE_COLUMNS = {"id", "folder_id", "created", "modified", "created_cn", "cn", "source_blob"}
CHUNKS = 1 << 16  # blob chunk keys: blob id * CHUNKS + sequence number (bridge.store.blobs)


def _named(conn: sqlite3.Connection) -> dict[int, tuple[Any, ...]]:
    rows = conn.execute("SELECT id, guid, lid, name, ptype FROM named_props")
    return {int(r[0]): tuple(r[1:]) for r in rows}


def _props(doc: str, named: dict[int, tuple[Any, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in json.loads(doc).items():
        tag = int(key, 16)
        pid, ptype = tag >> 16, tag & 0xFFFF
        if pid >= 0x8000:
            out[f"named {named.get(pid)!r} type {ptype:#06x}"] = value
        else:
            out[key] = value
    return out


def _blob(conn: sqlite3.Connection, blob_id: int | None) -> bytes | None:
    if blob_id is None:
        return None
    rows = conn.execute(
        "SELECT data FROM blob_chunks WHERE id >= ? AND id < ? ORDER BY id",
        (blob_id * CHUNKS, (blob_id + 1) * CHUNKS),
    )
    return b"".join(bytes(r[0]) for r in rows)


def snapshot(path: str) -> dict[str, dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    named = _named(conn)
    out: dict[str, dict[str, Any]] = {}
    for row in conn.execute("SELECT * FROM items WHERE upstream IS NOT NULL"):
        href = json.loads(row["upstream"]).get("href")
        item: dict[str, Any] = {
            k: row[k]
            for k in row.keys()  # noqa: SIM118 (a Row iterates over its values)
            if k not in STORE_COLUMNS and k != "props"
        }
        item["props"] = _props(row["props"], named)
        item["source"] = _blob(conn, row["source_blob"])
        iid = row["id"]
        item["recipients"] = [
            (r[0], r[1], r[2], r[3], _props(r[4], named))
            for r in conn.execute(
                "SELECT row_id, type, display_name, email, props FROM recipients"
                " WHERE item_id = ? ORDER BY row_id",
                (iid,),
            )
        ]
        item["attachments"] = [
            (*tuple(r[:7]), _props(r[7], named), _blob(conn, r[8]))
            for r in conn.execute(
                "SELECT num, filename, mime_tag, size, content_id, method, hidden, props,"
                " blob_id FROM attachments WHERE item_id = ? ORDER BY num",
                (iid,),
            )
        ]
        item["categories"] = sorted(
            r[0]
            for r in conn.execute("SELECT category FROM item_categories WHERE item_id = ?", (iid,))
        )
        out[str(href)] = item
    skipped = conn.execute("SELECT href, etag, reason FROM dav_skipped ORDER BY href")
    out["(skipped)"] = {"rows": [tuple(r) for r in skipped]}
    conn.close()
    return out


def main(argv: list[str]) -> int:
    a, b = snapshot(argv[0]), snapshot(argv[1])
    problems: list[str] = []
    for href in sorted(set(a) | set(b)):
        if href not in a or href not in b:
            problems.append(f"{href}: only in {'B' if href in b else 'A'}")
            continue
        for field in sorted(set(a[href]) | set(b[href])):
            va, vb = a[href].get(field), b[href].get(field)
            if va != vb:
                if isinstance(va, dict) and isinstance(vb, dict):
                    keys = sorted(k for k in set(va) | set(vb) if va.get(k) != vb.get(k))
                    problems.append(f"{href}: {field} differ in {keys[:5]}")
                else:
                    problems.append(f"{href}: {field}: {str(va)[:80]!r} != {str(vb)[:80]!r}")
    print(f"{len(a) - 1} / {len(b) - 1} items compared, {len(problems)} differences")
    for p in problems[:20]:
        print(" ", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
