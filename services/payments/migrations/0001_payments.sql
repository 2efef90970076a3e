-- Payment intents, every provider call made for them, refunds, and card tokens.
-- No card number or CVC is ever stored: a card is its token, brand, last four digits,
-- expiry and a keyed fingerprint; what providers hold for it is in `card_vaults`.
CREATE TABLE card_tokens (
    token TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    last4 TEXT NOT NULL,
    exp_month BIGINT NOT NULL,
    exp_year BIGINT NOT NULL,
    -- HMAC-SHA256 of the number under the service's fingerprint key: the same card is
    -- recognised across tokens (velocity, blocklists) without anything that gives it back.
    fingerprint TEXT NOT NULL,
    -- Who tokenized it.
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX card_tokens_fingerprint ON card_tokens (fingerprint);

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- requires_payment_method | requires_confirmation | processing | requires_capture
    -- | succeeded | failed | canceled
    status TEXT NOT NULL,
    -- automatic | manual
    capture_method TEXT NOT NULL,
    provider TEXT NOT NULL,
    -- The charge at the provider, once made.
    provider_reference TEXT,
    card_token TEXT REFERENCES card_tokens (token),
    amount_capturable BIGINT NOT NULL DEFAULT 0,
    amount_captured BIGINT NOT NULL DEFAULT 0,
    -- Refunded or being refunded: reserved before the provider is asked, so concurrent
    -- refunds can never exceed what was captured.
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    customer_email TEXT,
    -- JSON object of string → string.
    metadata TEXT NOT NULL,
    failure_code TEXT,
    failure_message TEXT,
    -- A provider call in flight holds the payment until then (micros), so concurrent
    -- requests never call the provider twice at once.
    locked_until BIGINT NOT NULL DEFAULT 0,
    -- Who created it.
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (amount_refunded >= 0 AND amount_refunded <= amount_captured AND amount_captured <= amount)
);
CREATE INDEX payments_created ON payments (created_at);

CREATE TABLE payment_attempts (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    -- charge | capture | cancel | refund
    operation TEXT NOT NULL,
    provider TEXT NOT NULL,
    -- The key the provider got; a retry sends the same one.
    idempotency_key TEXT NOT NULL,
    -- succeeded | declined | unavailable | rejected
    outcome TEXT NOT NULL,
    code TEXT,
    message TEXT,
    reference TEXT,
    duration_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX payment_attempts_payment ON payment_attempts (payment_id, id);

CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    amount BIGINT NOT NULL,
    reason TEXT,
    -- pending | succeeded | failed
    status TEXT NOT NULL,
    provider_reference TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id, id);
