-- Cheaper item inserts (bulk mail sync). The insert triggers of 0008 and 0012 read
-- PidTagSenderName out of `props` with json_extract, which parses the whole document (body
-- and HTML included) each time, and the one of 0008 then rewrites the new row to fill in
-- sender_name_prop. An insert may now give sender_name_prop itself (exactly what
-- json_extract gives, as item_rows does); the triggers read the document only for an
-- insert that leaves it NULL, so every other writer of items is served as before.
DROP TRIGGER items_sender_name_prop_insert;
CREATE TRIGGER items_sender_name_prop_insert AFTER INSERT ON items
WHEN NEW.sender_name_prop IS NULL
    AND json_extract(NEW.props, '$."0x0C1A001F"') IS NOT NULL
BEGIN
    UPDATE items SET sender_name_prop = json_extract(NEW.props, '$."0x0C1A001F"')
        WHERE id = NEW.id;
END;

DROP TRIGGER item_sender_counts_insert;
CREATE TRIGGER item_sender_counts_insert AFTER INSERT ON items
BEGIN
    INSERT INTO item_sender_counts
        SELECT NEW.folder_id, NEW.associated, name IS NOT NULL, coalesce(name, ''), 1,
               ((NEW.flags & 1) = 0),
               NOT EXISTS (SELECT 1 FROM items o WHERE o.folder_id = NEW.folder_id
                   AND o.associated = NEW.associated
                   AND o.sender_name_prop COLLATE NOCASE IS name
                   AND o.received IS NEW.received AND o.id <> NEW.id)
        FROM (SELECT coalesce(NEW.sender_name_prop,
                              json_extract(NEW.props, '$."0x0C1A001F"')) AS name)
        WHERE 1
        ON CONFLICT DO UPDATE SET count = count + excluded.count,
            unread = unread + excluded.unread, times = times + excluded.times;
END;
