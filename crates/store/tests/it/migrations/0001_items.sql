CREATE TABLE items (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    available BIGINT NOT NULL CHECK (available >= 0),
    created_at BIGINT NOT NULL
);
