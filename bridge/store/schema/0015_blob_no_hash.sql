-- Blobs keep no content hash. Nothing ever read `sha256`, and computing it cost the bulk
-- mail sync about 0.5 s of CPU per 750 MB stored, on the process that reads the IMAP
-- stream. The size stays: it is what an attachment's and a source's size come from.
ALTER TABLE blobs DROP COLUMN sha256;
