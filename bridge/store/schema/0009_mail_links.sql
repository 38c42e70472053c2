-- The mail sync looks up the items linked to one upstream mailbox at every pull and before
-- every upload (store/syncstate.py, linked_items); without this index each look-up reads
-- the whole items table.
CREATE INDEX items_upstream_mailbox ON items (json_extract(upstream, '$.mailbox'))
    WHERE upstream IS NOT NULL;
