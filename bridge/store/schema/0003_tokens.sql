-- Bearer tokens for the local API. Only a SHA-256 of each token is kept.

CREATE TABLE tokens (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,
    hash      TEXT NOT NULL UNIQUE,
    scope     TEXT NOT NULL CHECK (scope IN ('read', 'write', 'send', 'admin')),
    folders   TEXT,
    created   INTEGER NOT NULL,
    last_used INTEGER,
    revoked   INTEGER NOT NULL DEFAULT 0
);
