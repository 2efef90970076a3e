-- Promotions: percentage (basis points) or fixed amount (JSON list of {amount, currency}),
-- on everything, categories (sub-categories included) or products (ids as a JSON array).
CREATE TABLE promotions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- percentage | fixed_amount
    kind TEXT NOT NULL,
    basis_points BIGINT CHECK (basis_points BETWEEN 1 AND 10000),
    -- JSON array of {"amount", "currency"}, for fixed_amount.
    amounts TEXT,
    -- all | categories | products
    target TEXT NOT NULL,
    -- JSON array of category or product ids.
    target_ids TEXT NOT NULL,
    -- Upper-case; unique among active promotions (index below).
    coupon_code TEXT,
    starts_at BIGINT,
    ends_at BIGINT,
    usage_limit BIGINT CHECK (usage_limit >= 1),
    usage_limit_per_customer BIGINT CHECK (usage_limit_per_customer >= 1),
    minimum_subtotal_amount BIGINT CHECK (minimum_subtotal_amount >= 0),
    minimum_subtotal_currency TEXT,
    -- 0 | 1
    stackable BIGINT NOT NULL,
    -- 0 | 1
    active BIGINT NOT NULL,
    -- Set by DELETE: the row stays for the redemptions that name it.
    deleted_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX promotions_active_coupon ON promotions (coupon_code)
    WHERE active = 1 AND deleted_at IS NULL AND coupon_code IS NOT NULL;
CREATE INDEX promotions_active ON promotions (active, deleted_at);

-- One row per order that used a promotion; the primary key makes redeeming idempotent.
CREATE TABLE promotion_redemptions (
    promotion_id TEXT NOT NULL REFERENCES promotions (id),
    order_id TEXT NOT NULL,
    customer_id TEXT,
    redeemed_at BIGINT NOT NULL,
    PRIMARY KEY (promotion_id, order_id)
);
CREATE INDEX promotion_redemptions_customer ON promotion_redemptions (promotion_id, customer_id);
