-- API keys: the secret is shown once; only its SHA-256 and a short display prefix are kept.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    -- First characters of the secret (`mk_live_` + 8), for lookup and display; not secret.
    prefix TEXT NOT NULL,
    -- SHA-256 of the whole secret, lowercase hex.
    secret_hash TEXT NOT NULL UNIQUE,
    -- JSON array of scopes: read, write, admin.
    scopes TEXT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_prefix ON api_keys (prefix);
CREATE INDEX api_keys_user ON api_keys (user_id, id);
