-- Stock lives per SKU per warehouse. Every change to `stock_levels` writes a row to the
-- append-only `movements` ledger in the same transaction, so on_hand and reserved always
-- equal the sums of their movements (`mercato inventory verify` checks it).
CREATE TABLE warehouses (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- JSON object: line1, line2, city, region, postal_code.
    address TEXT NOT NULL,
    -- ISO 3166-1 alpha-2.
    country TEXT NOT NULL,
    -- Smaller is tried first when allocating.
    priority BIGINT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- SKUs inventory knows: received stock, or announced by catalog.
CREATE TABLE skus (
    sku TEXT PRIMARY KEY,
    -- NULL: the platform default (INVENTORY_LOW_STOCK_THRESHOLD).
    low_stock_threshold BIGINT,
    -- 1 while available is at or below the threshold, so an alert fires once per crossing.
    low BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE stock_levels (
    sku TEXT NOT NULL REFERENCES skus (sku),
    warehouse_id TEXT NOT NULL REFERENCES warehouses (id),
    on_hand BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (sku, warehouse_id),
    CHECK (reserved >= 0 AND reserved <= on_hand)
);
CREATE INDEX stock_levels_updated ON stock_levels (updated_at);

CREATE TABLE movements (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    warehouse_id TEXT NOT NULL,
    -- receipt | adjustment | reservation | release | commit | return
    kind TEXT NOT NULL,
    on_hand_delta BIGINT NOT NULL,
    reserved_delta BIGINT NOT NULL,
    on_hand_after BIGINT NOT NULL,
    reserved_after BIGINT NOT NULL,
    -- The reservation, order or document behind the change.
    reference TEXT,
    note TEXT,
    -- Who made the change: a user id, or `system`.
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX movements_sku ON movements (sku, id);

CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    -- Usually the order id.
    reference TEXT NOT NULL,
    -- active | committed | released | expired
    status TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX reservations_reference ON reservations (reference);
CREATE INDEX reservations_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    sku TEXT NOT NULL,
    warehouse_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    -- Order of the line in the request, to answer in the caller's order.
    position BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, sku, warehouse_id)
);
