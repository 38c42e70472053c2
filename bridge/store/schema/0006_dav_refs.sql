-- CalDAV / CardDAV sync: look-ups of items by their upstream href and by iCalendar/vCard
-- UID within a folder (the references live in the `upstream` JSON columns), and the
-- resources the bridge chose not to keep (outside the calendar window, or malformed), so
-- that a listing does not fetch them again while their ETag stays the same.

CREATE INDEX items_dav_href ON items (json_extract(upstream, '$.href'))
    WHERE json_extract(upstream, '$.href') IS NOT NULL;
CREATE INDEX items_dav_uid ON items (folder_id, json_extract(upstream, '$.dav_uid'))
    WHERE json_extract(upstream, '$.dav_uid') IS NOT NULL;

CREATE TABLE dav_skipped (
    href       TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    etag       TEXT,
    reason     TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX dav_skipped_collection ON dav_skipped (collection);
