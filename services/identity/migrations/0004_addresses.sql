-- Saved postal addresses of a user (their address book), offered again at checkout.
CREATE TABLE addresses (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- Optional name given by the owner ("Home", "Office").
    label TEXT,
    -- The address as JSON (kernel::address::Address).
    address TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX addresses_user ON addresses (user_id, id);
