-- An item whose texts (header block and bodies) are read from its source, not kept in its
-- property document (`store/texts.py`).
ALTER TABLE items ADD COLUMN texts_in_source INTEGER NOT NULL DEFAULT 0;
