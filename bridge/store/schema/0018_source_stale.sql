-- An item's raw source that no longer tells its content: set when a local client changes
-- what a message's MIME carries (anything but its flags and categories) of an item that
-- keeps a source. What is uploaded or sent for it is then built from its properties;
-- the source itself stays as received (GET .../source, attachments read from it).
ALTER TABLE items ADD COLUMN source_stale INTEGER NOT NULL DEFAULT 0;
