-- Search folders (MAPI FOLDER_SEARCH, PidTagFolderType 2), the Reminders search folder and
-- the conversation key of items.
--
-- A search folder keeps its criteria (SetSearchCriteria: a restriction and the folders it
-- searches, recursively or not) and the items that match them, kept up to date in the
-- transaction of every item write (bridge/store/search_folders.py). Membership counts are
-- kept by triggers; membership changes are logged in `search_log`, which the same
-- transaction drains into notifications before it commits.

CREATE TABLE search_criteria (
    folder_id   INTEGER PRIMARY KEY REFERENCES folders (id) ON DELETE CASCADE,
    restriction TEXT NOT NULL,             -- the JSON restriction tree as the client gave it
    recursive   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE search_scope (
    folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    scope_id  INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    PRIMARY KEY (folder_id, scope_id)
) WITHOUT ROWID;
CREATE INDEX search_scope_scope ON search_scope (scope_id);

-- `cn`: the change number at which the item entered the search folder (change feed).
CREATE TABLE search_members (
    folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    item_id   INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    unread    INTEGER NOT NULL,
    cn        INTEGER NOT NULL,
    PRIMARY KEY (folder_id, item_id)
) WITHOUT ROWID;
CREATE INDEX search_members_item ON search_members (item_id);

-- Items that left a search folder (change feed).
CREATE TABLE search_tombstones (
    folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    item_id   INTEGER NOT NULL,
    cn        INTEGER NOT NULL,
    PRIMARY KEY (folder_id, item_id)
) WITHOUT ROWID;
CREATE INDEX search_tombstones_cn ON search_tombstones (folder_id, cn);

-- Membership changes of the running transaction; always empty between transactions.
CREATE TABLE search_log (
    seq       INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL,
    item_id   INTEGER NOT NULL,
    added     INTEGER NOT NULL
);

CREATE TRIGGER search_member_added AFTER INSERT ON search_members
BEGIN
    UPDATE folders SET content_count = content_count + 1,
        unread_count = unread_count + new.unread WHERE id = new.folder_id;
    INSERT INTO search_log (folder_id, item_id, added) VALUES (new.folder_id, new.item_id, 1);
END;

CREATE TRIGGER search_member_removed AFTER DELETE ON search_members
BEGIN
    UPDATE folders SET content_count = content_count - 1,
        unread_count = unread_count - old.unread WHERE id = old.folder_id;
    INSERT INTO search_log (folder_id, item_id, added) VALUES (old.folder_id, old.item_id, 0);
END;

CREATE TRIGGER search_member_unread AFTER UPDATE OF unread ON search_members
BEGIN
    UPDATE folders SET unread_count = unread_count + new.unread - old.unread
        WHERE id = new.folder_id;
END;

-- The Reminders search folder of an existing store (a new store gets it with the default
-- folder set); its criteria are written when the store opens.
INSERT INTO folders (id, parent_id, role, display_name, container_class, folder_type, props,
                     created, modified, cn)
SELECT CAST(nf.value AS INTEGER), r.id, 'reminders', 'Reminders', 'Outlook.Reminder', 2, '{}',
       CAST(unixepoch() AS INTEGER) * 10000000 + 116444736000000000,
       CAST(unixepoch() AS INTEGER) * 10000000 + 116444736000000000,
       CAST(nc.value AS INTEGER)
FROM folders r, meta nf, meta nc
WHERE r.role = 'root' AND nf.key = 'next_folder' AND nc.key = 'next_cn'
  AND NOT EXISTS (SELECT 1 FROM folders WHERE role = 'reminders')
  AND NOT EXISTS (SELECT 1 FROM folders x
                  WHERE x.parent_id = r.id AND x.display_name = 'Reminders' COLLATE NOCASE);
UPDATE meta SET value = CAST(value AS INTEGER) + 1
WHERE key = 'next_cn' AND CAST(value AS INTEGER) = (SELECT cn FROM folders WHERE role = 'reminders');
UPDATE meta SET value = CAST(value AS INTEGER) + 1
WHERE key = 'next_folder'
  AND CAST(value AS INTEGER) = (SELECT id FROM folders WHERE role = 'reminders');

-- Conversation view: a 16-byte conversation id per item (PidTagConversationId), computed
-- by the store when the item is written; rows of older stores are filled when it opens.
ALTER TABLE items ADD COLUMN conversation_id BLOB;
CREATE INDEX items_folder_conversation ON items (folder_id, conversation_id);
CREATE INDEX items_conversation_pending ON items (id) WHERE conversation_id IS NULL;
