-- Folders, items, recipients, attachments and the chunked blobs behind raw sources and
-- attachment data. Times are FILETIME integers (100 ns ticks since 1601, UTC).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Per-store map of named properties (GUID + LID or GUID + name) to ids 0x8000..0xFFFE.
CREATE TABLE named_props (
    id    INTEGER PRIMARY KEY CHECK (id BETWEEN 32768 AND 65534),
    guid  TEXT NOT NULL,
    lid   INTEGER,
    name  TEXT,
    ptype INTEGER,
    CHECK ((lid IS NULL) <> (name IS NULL))
);
CREATE UNIQUE INDEX named_props_lid ON named_props (guid, lid) WHERE lid IS NOT NULL;
CREATE UNIQUE INDEX named_props_name ON named_props (guid, name) WHERE name IS NOT NULL;

CREATE TABLE blobs (
    id     INTEGER PRIMARY KEY,
    size   INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);

-- Content in fixed-size chunks so that large attachments stream in and out. A chunk's key
-- is blob id * 65536 + sequence number: one B-tree, no second index.
CREATE TABLE blob_chunks (
    id   INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

-- Blobs streamed in but not yet attached; whatever is left here at start is removed.
CREATE TABLE pending_blobs (
    blob_id INTEGER PRIMARY KEY
);

CREATE TABLE folders (
    id              INTEGER PRIMARY KEY,
    parent_id       INTEGER REFERENCES folders (id),
    role            TEXT UNIQUE,
    display_name    TEXT NOT NULL,
    container_class TEXT,
    folder_type     INTEGER NOT NULL DEFAULT 1,
    props           TEXT NOT NULL DEFAULT '{}',
    content_count   INTEGER NOT NULL DEFAULT 0,
    unread_count    INTEGER NOT NULL DEFAULT 0,
    assoc_count     INTEGER NOT NULL DEFAULT 0,
    created         INTEGER NOT NULL,
    modified        INTEGER NOT NULL,
    cn              INTEGER NOT NULL,
    upstream        TEXT
);
CREATE UNIQUE INDEX folders_sibling_name ON folders (parent_id, display_name COLLATE NOCASE);

-- Hot properties are real columns (mirrors of the values in `props`) so that sorts and
-- restrictions run in SQL; `props` holds every property as {hex tag: JSON value}.
CREATE TABLE items (
    id            INTEGER PRIMARY KEY,
    folder_id     INTEGER NOT NULL REFERENCES folders (id),
    message_class TEXT NOT NULL,
    subject       TEXT,
    sender_name   TEXT,
    sender_email  TEXT,
    received      INTEGER,
    sent          INTEGER,
    size          INTEGER NOT NULL DEFAULT 0,
    flags         INTEGER NOT NULL DEFAULT 0,
    importance    INTEGER,
    sensitivity   INTEGER,
    has_attach    INTEGER NOT NULL DEFAULT 0,
    associated    INTEGER NOT NULL DEFAULT 0,
    start_time    INTEGER,
    end_time      INTEGER,
    due_time      INTEGER,
    created       INTEGER NOT NULL,
    modified      INTEGER NOT NULL,
    created_cn    INTEGER NOT NULL,
    cn            INTEGER NOT NULL,
    props         TEXT NOT NULL,
    source_blob   INTEGER REFERENCES blobs (id),
    source_type   TEXT,
    upstream      TEXT
);
CREATE INDEX items_folder_received ON items (folder_id, received);
CREATE INDEX items_folder_subject ON items (folder_id, subject COLLATE NOCASE);
CREATE INDEX items_folder_start ON items (folder_id, start_time) WHERE start_time IS NOT NULL;
CREATE INDEX items_folder_due ON items (folder_id, due_time) WHERE due_time IS NOT NULL;
CREATE INDEX items_folder_cn ON items (folder_id, cn);

CREATE TABLE item_categories (
    item_id  INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    category TEXT NOT NULL,
    PRIMARY KEY (item_id, category)
);
CREATE INDEX item_categories_category ON item_categories (category);

CREATE TABLE recipients (
    item_id      INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    row_id       INTEGER NOT NULL,
    type         INTEGER NOT NULL,
    display_name TEXT,
    email        TEXT,
    props        TEXT NOT NULL,
    PRIMARY KEY (item_id, row_id)
);
CREATE INDEX recipients_email ON recipients (email COLLATE NOCASE);

CREATE TABLE attachments (
    item_id    INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    num        INTEGER NOT NULL,
    filename   TEXT,
    mime_tag   TEXT,
    size       INTEGER NOT NULL DEFAULT 0,
    content_id TEXT,
    method     INTEGER NOT NULL DEFAULT 1,
    hidden     INTEGER NOT NULL DEFAULT 0,
    blob_id    INTEGER REFERENCES blobs (id),
    props      TEXT NOT NULL,
    PRIMARY KEY (item_id, num)
);
