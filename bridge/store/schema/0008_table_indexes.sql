-- Indexes for large contents tables (docs/tables.md, "Performance model").
--
-- Every contents table filters on (folder_id, associated); with both in front, a first page
-- sorted by delivery time is an index range read with LIMIT, row counts and OFFSET skips
-- never touch the table, and the rowid at the end of the index breaks ties by object id.
-- These replace the (folder_id, received) and (folder_id, subject) indexes of schema 1.
DROP INDEX items_folder_received;
CREATE INDEX items_folder_assoc_received ON items (folder_id, associated, received);
DROP INDEX items_folder_subject;
CREATE INDEX items_folder_assoc_subject ON items (folder_id, associated, subject COLLATE NOCASE);

-- The items the full-text index has not caught up with yet (cn above search_state.cn),
-- which CONTENT restrictions with a full-text prefilter always include.
CREATE INDEX items_cn ON items (cn);

-- PidTagSenderName exactly as stored (the sender_name column falls back to the
-- representing name and to NULL for an empty name), kept by triggers, so that tables can
-- sort, group and count by it on a covering index instead of reading every document. No
-- declared type: the column holds what json_extract returns, unconverted.
ALTER TABLE items ADD COLUMN sender_name_prop;
UPDATE items SET sender_name_prop = json_extract(props, '$."0x0C1A001F"');
CREATE TRIGGER items_sender_name_prop_insert AFTER INSERT ON items
BEGIN
    UPDATE items SET sender_name_prop = json_extract(NEW.props, '$."0x0C1A001F"')
        WHERE id = NEW.id;
END;
CREATE TRIGGER items_sender_name_prop_update AFTER UPDATE OF props ON items
BEGIN
    UPDATE items SET sender_name_prop = json_extract(NEW.props, '$."0x0C1A001F"')
        WHERE id = NEW.id;
END;
CREATE INDEX items_folder_assoc_sender ON items
    (folder_id, associated, sender_name_prop COLLATE NOCASE, received);
