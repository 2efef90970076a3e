-- Category tree: `path` lists the ids from the root down, `/cat_a/cat_b/`, so that a
-- category's subtree is `path LIKE '<its path>%'`.
CREATE TABLE categories (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES categories (id),
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX categories_parent ON categories (parent_id, position);
CREATE INDEX categories_path ON categories (path);

CREATE TABLE products (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    -- Markdown.
    description TEXT NOT NULL,
    -- draft | active | archived
    status TEXT NOT NULL,
    brand TEXT,
    -- JSON array of strings.
    tags TEXT NOT NULL,
    -- JSON object of string → string.
    attributes TEXT NOT NULL,
    -- JSON array of URLs.
    images TEXT NOT NULL,
    seo_title TEXT,
    seo_description TEXT,
    -- 1 when any variant has stock available (follows inventory.stock.updated).
    in_stock BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX products_status ON products (status, id);

CREATE TABLE product_categories (
    product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    category_id TEXT NOT NULL REFERENCES categories (id),
    PRIMARY KEY (product_id, category_id)
);
CREATE INDEX product_categories_category ON product_categories (category_id);

CREATE TABLE variants (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    sku TEXT NOT NULL UNIQUE,
    -- JSON object of option → value, e.g. {"size": "M", "colour": "red"}.
    options TEXT NOT NULL,
    weight_grams BIGINT,
    barcode TEXT,
    position BIGINT NOT NULL,
    -- Units available to sell, as inventory last reported.
    available BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX variants_product ON variants (product_id, position);

-- One price per variant and currency, in minor units.
CREATE TABLE variant_prices (
    variant_id TEXT NOT NULL REFERENCES variants (id) ON DELETE CASCADE,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount >= 0),
    compare_at_amount BIGINT CHECK (compare_at_amount >= 0),
    PRIMARY KEY (variant_id, currency)
);
