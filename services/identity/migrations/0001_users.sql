-- Accounts of customers, staff and admins.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Normalized: trimmed and lower-cased as a whole (ASCII only), so uniqueness ignores case.
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- Argon2id PHC string.
    password_hash TEXT NOT NULL,
    -- JSON array of platform roles: customer, staff, admin.
    roles TEXT NOT NULL,
    email_verified_at BIGINT,
    disabled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Refresh tokens: opaque, stored as SHA-256 only, single use, rotated within a family.
CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- Every token rotated from one login shares the family; reuse revokes the family.
    family_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Ed25519 signing keys of access tokens; the newest unretired key signs.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    -- PKCS#8 DER, standard base64.
    private_pkcs8 TEXT NOT NULL,
    -- Raw 32-byte public key, base64url without padding (the JWK `x`).
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- Failed logins, per account (normalized email) and per client IP, for throttling.
CREATE TABLE login_failures (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    ip TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX login_failures_account ON login_failures (account, at);
CREATE INDEX login_failures_ip ON login_failures (ip, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- Active or past lockouts; key is `account:<email>` or `ip:<address>`.
CREATE TABLE lockouts (
    lock_key TEXT PRIMARY KEY,
    locked_until BIGINT NOT NULL
);

-- Single-use email tokens (verification, password reset), stored as SHA-256 only.
CREATE TABLE email_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- verify_email or password_reset.
    purpose TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);
