-- Full-text entries in received order. An entry's rowid (`search_docs.id`) is no longer the
-- item id but its search key (store/search_keys.py): the second the item was received
-- (since 2000-01-01, clamped to 32 bits) times 2^32 plus the item id. FTS5 walks a match
-- list in rowid order, so a search reads its matches newest first and stops at its page
-- instead of collecting every match before sorting. The index is rebuilt by the indexer
-- (search_state.cn back to 0); until it catches up, a search says it is incomplete.

DROP TRIGGER search_item_gone;
DROP TABLE search_fts;
DROP TABLE search_docs;

CREATE TABLE search_docs (
    id          INTEGER PRIMARY KEY,     -- the search key
    item_id     INTEGER NOT NULL UNIQUE,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    recipients  TEXT NOT NULL,
    attachments TEXT NOT NULL
);

CREATE VIRTUAL TABLE search_fts USING fts5 (
    subject, body, sender, recipients, attachments,
    content = 'search_docs', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

UPDATE search_state SET cn = 0;

-- However an item goes (delete, folder delete), its entry goes in the same transaction.
CREATE TRIGGER search_item_gone AFTER DELETE ON items
BEGIN
    INSERT INTO search_fts (search_fts, rowid, subject, body, sender, recipients, attachments)
        SELECT 'delete', id, subject, body, sender, recipients, attachments
        FROM search_docs WHERE item_id = old.id;
    DELETE FROM search_docs WHERE item_id = old.id;
END;
