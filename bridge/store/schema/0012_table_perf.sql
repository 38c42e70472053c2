-- Category counts by sender (docs/tables.md, "Performance model").
--
-- A contents view categorized by PidTagSenderName (and then, optionally, by the delivery
-- time) shows its first page without grouping the whole folder: the number of items, of
-- unread items and of distinct delivery times per sender name of each folder are kept here
-- by triggers. `has_sender` 0 is the group of the items without a sender name (`sender` is
-- then ''). The triggers read the name from `props` (what sender_name_prop, schema 0008,
-- holds once its own triggers have run), so that they need not run after those; a row is
-- changed by deltas, and one whose count is down to 0 may stay (readers skip it).
CREATE TABLE item_sender_counts (
    folder_id  INTEGER NOT NULL,
    associated INTEGER NOT NULL,
    has_sender INTEGER NOT NULL,
    sender     NOT NULL COLLATE NOCASE,
    count      INTEGER NOT NULL,
    unread     INTEGER NOT NULL,
    times      INTEGER NOT NULL,
    PRIMARY KEY (folder_id, associated, has_sender, sender)
) WITHOUT ROWID;

INSERT INTO item_sender_counts
    SELECT folder_id, associated, sender_name_prop IS NOT NULL,
           coalesce(sender_name_prop, '') COLLATE NOCASE, count(*), sum((flags & 1) = 0),
           count(DISTINCT received) + max(received IS NULL)
    FROM items
    GROUP BY folder_id, associated, sender_name_prop IS NOT NULL,
             coalesce(sender_name_prop, '') COLLATE NOCASE;

CREATE TRIGGER item_sender_counts_insert AFTER INSERT ON items
BEGIN
    INSERT INTO item_sender_counts
        SELECT NEW.folder_id, NEW.associated, json_extract(NEW.props, '$."0x0C1A001F"') IS NOT NULL,
               coalesce(json_extract(NEW.props, '$."0x0C1A001F"'), ''), 1, ((NEW.flags & 1) = 0),
               NOT EXISTS (SELECT 1 FROM items o WHERE o.folder_id = NEW.folder_id
                   AND o.associated = NEW.associated
                   AND o.sender_name_prop COLLATE NOCASE IS json_extract(NEW.props, '$."0x0C1A001F"')
                   AND o.received IS NEW.received AND o.id <> NEW.id)
        WHERE 1
        ON CONFLICT DO UPDATE SET count = count + excluded.count,
            unread = unread + excluded.unread, times = times + excluded.times;
END;

CREATE TRIGGER item_sender_counts_delete AFTER DELETE ON items
BEGIN
    INSERT INTO item_sender_counts
        SELECT OLD.folder_id, OLD.associated, json_extract(OLD.props, '$."0x0C1A001F"') IS NOT NULL,
               coalesce(json_extract(OLD.props, '$."0x0C1A001F"'), ''), -1, -((OLD.flags & 1) = 0),
               -NOT EXISTS (SELECT 1 FROM items o WHERE o.folder_id = OLD.folder_id
                   AND o.associated = OLD.associated
                   AND o.sender_name_prop COLLATE NOCASE IS json_extract(OLD.props, '$."0x0C1A001F"')
                   AND o.received IS OLD.received AND o.id <> OLD.id)
        WHERE 1
        ON CONFLICT DO UPDATE SET count = count + excluded.count,
            unread = unread + excluded.unread, times = times + excluded.times;
END;

CREATE TRIGGER item_sender_counts_update
AFTER UPDATE OF folder_id, associated, props, received, flags ON items
WHEN OLD.folder_id IS NOT NEW.folder_id OR OLD.associated IS NOT NEW.associated
    OR OLD.received IS NOT NEW.received OR (OLD.flags & 1) IS NOT (NEW.flags & 1)
    OR json_extract(OLD.props, '$."0x0C1A001F"') IS NOT json_extract(NEW.props, '$."0x0C1A001F"')
BEGIN
    INSERT INTO item_sender_counts
        SELECT OLD.folder_id, OLD.associated, json_extract(OLD.props, '$."0x0C1A001F"') IS NOT NULL,
               coalesce(json_extract(OLD.props, '$."0x0C1A001F"'), ''), -1, -((OLD.flags & 1) = 0),
               -NOT EXISTS (SELECT 1 FROM items o WHERE o.folder_id = OLD.folder_id
                   AND o.associated = OLD.associated
                   AND o.sender_name_prop COLLATE NOCASE IS json_extract(OLD.props, '$."0x0C1A001F"')
                   AND o.received IS OLD.received AND o.id <> OLD.id)
        WHERE 1
        ON CONFLICT DO UPDATE SET count = count + excluded.count,
            unread = unread + excluded.unread, times = times + excluded.times;
    INSERT INTO item_sender_counts
        SELECT NEW.folder_id, NEW.associated, json_extract(NEW.props, '$."0x0C1A001F"') IS NOT NULL,
               coalesce(json_extract(NEW.props, '$."0x0C1A001F"'), ''), 1, ((NEW.flags & 1) = 0),
               NOT EXISTS (SELECT 1 FROM items o WHERE o.folder_id = NEW.folder_id
                   AND o.associated = NEW.associated
                   AND o.sender_name_prop COLLATE NOCASE IS json_extract(NEW.props, '$."0x0C1A001F"')
                   AND o.received IS NEW.received AND o.id <> NEW.id)
        WHERE 1
        ON CONFLICT DO UPDATE SET count = count + excluded.count,
            unread = unread + excluded.unread, times = times + excluded.times;
END;
