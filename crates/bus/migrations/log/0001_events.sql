-- The embedded bus's durable log (its own SQLite file, bus.db).

CREATE TABLE events (
    -- AUTOINCREMENT: a seq is never reused, even after pruning, so stored cursors stay valid.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    published_at BIGINT NOT NULL
);

CREATE TABLE consumer_cursors (
    consumer TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
