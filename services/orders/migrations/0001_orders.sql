-- Carts, orders and the checkout saga's state. Amounts are integer minor units of the
-- row's currency; times are epoch microseconds.
CREATE TABLE carts (
    id TEXT PRIMARY KEY,
    -- NULL for a guest cart.
    customer_id TEXT,
    currency TEXT NOT NULL,
    -- open | merged | converted
    status TEXT NOT NULL,
    coupon TEXT,
    email TEXT,
    -- Destination for shipping and tax estimates (ISO 3166-1 alpha-2, region code).
    country TEXT,
    region TEXT,
    order_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX carts_customer ON carts (customer_id, status, currency);

CREATE TABLE cart_items (
    id TEXT PRIMARY KEY,
    cart_id TEXT NOT NULL REFERENCES carts (id),
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (cart_id, sku)
);

-- Order numbers are a gapless counter, taken in the order's own transaction.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('order_number', 1000);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    number TEXT NOT NULL UNIQUE,
    customer_id TEXT,
    email TEXT NOT NULL,
    -- One order per cart: a second checkout of a cart is refused, not charged.
    cart_id TEXT NOT NULL UNIQUE,
    -- The checkout's idempotency key, scoped to the caller.
    checkout_key TEXT NOT NULL UNIQUE,
    -- pending | paid | on_hold | fulfilled | delivered | cancelled | refunded | partially_refunded
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    subtotal BIGINT NOT NULL,
    discount_total BIGINT NOT NULL,
    shipping_total BIGINT NOT NULL,
    tax_total BIGINT NOT NULL,
    total BIGINT NOT NULL,
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    coupon TEXT,
    -- JSON: the applied promotions, the shipping rate and the tax rate used.
    pricing TEXT NOT NULL,
    shipping_address TEXT NOT NULL,
    billing_address TEXT,
    payment_token TEXT NOT NULL,
    payment_id TEXT,
    reservation_id TEXT,
    -- created | reserved | payment_created | charged | review | compensating | done
    saga_step TEXT NOT NULL,
    -- Bumped by every step; a driver whose version is stale stops.
    saga_version BIGINT NOT NULL DEFAULT 0,
    saga_attempts BIGINT NOT NULL DEFAULT 0,
    -- When the resumer may take the saga up; pushed ahead while a driver works on it.
    saga_next_at BIGINT NOT NULL,
    saga_error TEXT,
    cancel_reason TEXT,
    carrier TEXT,
    tracking_number TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_email ON orders (email, id);
CREATE INDEX orders_saga ON orders (saga_step, saga_next_at);

CREATE TABLE order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id),
    position BIGINT NOT NULL,
    sku TEXT NOT NULL,
    title TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price BIGINT NOT NULL,
    subtotal BIGINT NOT NULL,
    discount_total BIGINT NOT NULL,
    tax BIGINT NOT NULL,
    total BIGINT NOT NULL,
    weight_grams BIGINT,
    refunded_quantity BIGINT NOT NULL DEFAULT 0,
    -- JSON: how the line's amounts were computed.
    explanation TEXT NOT NULL,
    -- JSON: [{warehouse_id, quantity}] where inventory held the units.
    allocations TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (order_id, position)
);

CREATE TABLE order_history (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    from_status TEXT,
    to_status TEXT NOT NULL,
    -- usr_…, svc_…, or `system` for the saga.
    actor TEXT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX order_history_order ON order_history (order_id, id);

CREATE TABLE order_refunds (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    -- The caller's idempotency key: a retried refund finds its row.
    request_key TEXT NOT NULL UNIQUE,
    amount BIGINT NOT NULL,
    -- JSON: [{sku, quantity}] refunded by line, empty for an amount refund.
    lines TEXT NOT NULL,
    restock BIGINT NOT NULL,
    reason TEXT,
    payment_refund_id TEXT,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE shipping_rates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- Comma-separated ISO 3166-1 alpha-2 codes; empty: every country.
    countries TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL,
    -- The rate applies to parcels of min_weight_grams <= weight < max_weight_grams.
    min_weight_grams BIGINT NOT NULL,
    max_weight_grams BIGINT,
    -- Free when the discounted subtotal reaches it.
    free_over BIGINT,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE tax_rates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    -- Empty: the whole country; a region's rate wins over the country's.
    region TEXT NOT NULL,
    -- Basis points: 1900 = 19 %.
    rate_bps BIGINT NOT NULL,
    -- 1: prices include the tax; 0: tax is added on top.
    inclusive BIGINT NOT NULL,
    -- 1: shipping is taxed too.
    applies_to_shipping BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (country, region)
);

-- `command.checkout` events as received: the consumer only records them (its transaction is
-- open while it runs), the worker places their orders.
CREATE TABLE checkout_commands (
    id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    order_id TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX checkout_commands_open ON checkout_commands (done_at, created_at);
