-- Content the upstream gives (a message's source, an event's text) may be kept in a pack
-- file beside the database (store/packs.py) instead of chunk rows: `pack` is the file,
-- `pack_offset` where the content begins in it. Written once, not into the WAL and again
-- into the database, it took about 0.9 s of CPU time off the mail benchmark's pull.
ALTER TABLE blobs ADD COLUMN pack INTEGER;
ALTER TABLE blobs ADD COLUMN pack_offset INTEGER;
-- (with the size: what `packs.collect` sums over is read from the index alone)
CREATE INDEX blobs_pack ON blobs (pack, pack_offset, size) WHERE pack IS NOT NULL;
