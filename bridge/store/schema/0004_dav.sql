-- WebDAV: the names clients gave to items, dead properties and the lock store.

-- A name chosen by a WebDAV client for an item (PUT "report.pdf"); items without one are
-- listed under a name derived from their subject and id.
CREATE TABLE dav_names (
    item_id INTEGER PRIMARY KEY REFERENCES items (id) ON DELETE CASCADE,
    name    TEXT NOT NULL
);
CREATE INDEX dav_names_name ON dav_names (name COLLATE NOCASE);

-- Dead properties (RFC 4918 §4), keyed by object (API id: f12, m345) so that they follow
-- the object through renames and moves. `name` is in Clark notation, `value` the XML.
CREATE TABLE dav_props (
    object TEXT NOT NULL,
    name   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (object, name)
) WITHOUT ROWID;
CREATE TRIGGER dav_props_item_gone AFTER DELETE ON items
BEGIN
    DELETE FROM dav_props WHERE object = 'm' || old.id;
END;
CREATE TRIGGER dav_props_folder_gone AFTER DELETE ON folders
BEGIN
    DELETE FROM dav_props WHERE object = 'f' || old.id;
END;

-- Locks (wsgidav's lock storage entries: a token → its lock, "URL2TOKEN:<path>" → tokens).
CREATE TABLE dav_locks (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
