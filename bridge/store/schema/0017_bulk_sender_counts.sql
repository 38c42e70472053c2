-- Cheaper item inserts. Each AFTER INSERT trigger runs as a subprogram per inserted row;
-- even an empty one cost about 35 µs per row in a bulk insert of mail items (15 KB of
-- properties each), and the two of 0012 and 0014 cost the initial pull of the mail
-- benchmark about 0.2 s of the database thread's 2.9 s (20,000 messages). They go.
-- Every insert into items now gives sender_name_prop itself (as json_extract would read
-- it from props), and then adds its rows to item_sender_counts in one statement
-- (store/item_rows.py, count_senders), with what the insert trigger added row by row.
-- The delete and update triggers stay.
DROP TRIGGER items_sender_name_prop_insert;
DROP TRIGGER item_sender_counts_insert;
