-- Risk scoring, provider failover and inbound webhooks.

-- The card vaulted at each provider that keeps cards, so a payment can fail over.
CREATE TABLE card_vaults (
    token TEXT NOT NULL REFERENCES card_tokens (token),
    provider TEXT NOT NULL,
    provider_method TEXT NOT NULL,
    PRIMARY KEY (token, provider)
);

-- 1 when the creator named the provider: no route or failover applies.
ALTER TABLE payments ADD COLUMN provider_pinned BIGINT NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN ip TEXT;
ALTER TABLE payments ADD COLUMN billing_country TEXT;
ALTER TABLE payments ADD COLUMN shipping_country TEXT;
ALTER TABLE payments ADD COLUMN fingerprint TEXT;
-- 0–100, allow | review | block, JSON array of reasons; NULL until scored.
ALTER TABLE payments ADD COLUMN risk_score BIGINT;
ALTER TABLE payments ADD COLUMN risk_decision TEXT;
ALTER TABLE payments ADD COLUMN risk_reasons TEXT;
-- Staff decision on a held payment: approved | rejected, and who.
ALTER TABLE payments ADD COLUMN review_decision TEXT;
ALTER TABLE payments ADD COLUMN reviewed_by TEXT;
-- 1 once the buyer disputed the charge.
ALTER TABLE payments ADD COLUMN disputed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX payments_email ON payments (customer_email, created_at);
CREATE INDEX payments_ip ON payments (ip, created_at);
CREATE INDEX payments_fingerprint ON payments (fingerprint, created_at);
CREATE INDEX payments_reference ON payments (provider, provider_reference);

CREATE TABLE risk_blocklist (
    -- email | email_domain | ip | card
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);

-- Webhook deliveries acted on, so a replay has no second effect.
CREATE TABLE webhook_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- Keys the service makes for itself on first start (the card fingerprint key).
CREATE TABLE service_keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
