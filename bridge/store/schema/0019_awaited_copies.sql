-- Items whose server copy is not known (sync/engine.py `_adopt`): moved here out of a
-- mailbox that is gone since (`lost`: found in any mailbox), or sent mail the server files
-- itself (`awaits`: found in that mailbox). Every pull that meets new messages looks them
-- up; these indexes spare it a read of every item.
CREATE INDEX items_lost ON items (id) WHERE json_extract(upstream, '$.lost') IS NOT NULL;
CREATE INDEX items_awaits ON items (json_extract(upstream, '$.awaits'))
    WHERE json_extract(upstream, '$.awaits') IS NOT NULL;
