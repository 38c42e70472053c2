-- Full-text search: an external-content FTS5 index keyed by item id. `search_docs` holds
-- exactly the text that was indexed for each item (case-folded), so that an entry can be
-- removed with FTS5's 'delete' command; the indexer (store/search.py) fills both from items
-- whose change number is above `search_state.cn`.

CREATE TABLE search_docs (
    id          INTEGER PRIMARY KEY,
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

-- The change number up to which every item is indexed.
CREATE TABLE search_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cn INTEGER NOT NULL
);
INSERT INTO search_state (id, cn) VALUES (1, 0);

-- However an item goes (delete, folder delete), its entry goes in the same transaction.
CREATE TRIGGER search_item_gone AFTER DELETE ON items
BEGIN
    INSERT INTO search_fts (search_fts, rowid, subject, body, sender, recipients, attachments)
        SELECT 'delete', id, subject, body, sender, recipients, attachments
        FROM search_docs WHERE id = old.id;
    DELETE FROM search_docs WHERE id = old.id;
END;
