-- Change tracking: the journal of local changes that must reach the upstream, and the
-- tombstones that let a change feed report deletions.

CREATE TABLE journal (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        INTEGER NOT NULL,
    op        TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('folder', 'item')),
    object_id INTEGER NOT NULL,
    folder_id INTEGER,
    cn        INTEGER NOT NULL,
    payload   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX journal_object ON journal (kind, object_id);

CREATE TABLE tombstones (
    folder_id INTEGER NOT NULL,
    item_id   INTEGER NOT NULL,
    cn        INTEGER NOT NULL,
    PRIMARY KEY (folder_id, item_id)
);
CREATE INDEX tombstones_cn ON tombstones (folder_id, cn);

-- Folders deleted outright (hierarchy change feed).
CREATE TABLE folder_tombstones (
    folder_id INTEGER PRIMARY KEY,
    parent_id INTEGER,
    cn        INTEGER NOT NULL
);
