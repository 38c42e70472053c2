-- Full-text search results newest first: the items in the order of delivery, checked
-- against the matches, until a page is full (bridge/store/search.py).
CREATE INDEX items_assoc_received ON items (associated, received);
