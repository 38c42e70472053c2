-- The DAV sync looks up the items linked to one collection at every pull that finds the
-- collection changed (store/dav_refs.py, linked_to); without this index each look-up
-- reads the whole items table.
CREATE INDEX items_dav_collection ON items (json_extract(upstream, '$.collection'))
    WHERE upstream IS NOT NULL;
