//! SQL of products, variants, prices and product categories.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mercato_kernel::pagination::PageRequest;
use sqlx::{AnyConnection, FromRow};

use crate::domain::product::{Price, Product, ProductStatus, Variant, VariantDraft};

/// Filters of a product listing.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// Only products in categories whose path starts with this.
    pub category_path: Option<String>,
    /// Only this status.
    pub status: Option<ProductStatus>,
    /// Only this brand.
    pub brand: Option<String>,
    /// Only titles containing this, ignoring case.
    pub title_contains: Option<String>,
}

#[derive(FromRow)]
struct ProductRow {
    id: String,
    title: String,
    slug: String,
    description: String,
    status: String,
    brand: Option<String>,
    tags: String,
    attributes: String,
    images: String,
    seo_title: Option<String>,
    seo_description: Option<String>,
    in_stock: i64,
    created_at: i64,
    updated_at: i64,
}

#[derive(FromRow)]
struct VariantRow {
    id: String,
    product_id: String,
    sku: String,
    options: String,
    weight_grams: Option<i64>,
    barcode: Option<String>,
    available: i64,
}

#[derive(FromRow)]
struct PriceRow {
    variant_id: String,
    currency: String,
    amount: i64,
    compare_at_amount: Option<i64>,
}

const PRODUCT_COLUMNS: &str = "id, title, slug, description, status, brand, tags, attributes, \
    images, seo_title, seo_description, in_stock, created_at, updated_at";

/// Time from stored epoch microseconds.
pub fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// Inserts or replaces the product row (not its variants or categories).
pub async fn upsert_product(conn: &mut AnyConnection, p: &Product) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO products (id, title, slug, description, status, brand, tags, attributes, \
         images, seo_title, seo_description, in_stock, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (id) DO UPDATE SET title = $2, slug = $3, description = $4, status = $5, \
         brand = $6, tags = $7, attributes = $8, images = $9, seo_title = $10, \
         seo_description = $11, in_stock = $12, updated_at = $14",
    )
    .bind(&p.id)
    .bind(&p.title)
    .bind(&p.slug)
    .bind(&p.description)
    .bind(p.status.as_str())
    .bind(&p.brand)
    .bind(json(&p.tags))
    .bind(json(&p.attributes))
    .bind(json(&p.images))
    .bind(&p.seo_title)
    .bind(&p.seo_description)
    .bind(i64::from(p.in_stock))
    .bind(p.created_at.timestamp_micros())
    .bind(p.updated_at.timestamp_micros())
    .execute(conn)
    .await?;
    Ok(())
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Replaces the product's categories.
pub async fn set_categories(
    conn: &mut AnyConnection,
    product_id: &str,
    category_ids: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM product_categories WHERE product_id = $1")
        .bind(product_id)
        .execute(&mut *conn)
        .await?;
    for category_id in category_ids {
        sqlx::query("INSERT INTO product_categories (product_id, category_id) VALUES ($1, $2)")
            .bind(product_id)
            .bind(category_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts a variant with its prices; a taken SKU is a unique violation.
pub async fn insert_variant(
    conn: &mut AnyConnection,
    product_id: &str,
    id: &str,
    position: i64,
    v: &VariantDraft,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO variants (id, product_id, sku, options, weight_grams, barcode, position, \
         available, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)",
    )
    .bind(id)
    .bind(product_id)
    .bind(v.sku.as_str())
    .bind(json(&v.options))
    .bind(v.weight_grams)
    .bind(&v.barcode)
    .bind(position)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    set_prices(conn, id, v).await
}

/// Updates a variant's fields and replaces its prices.
pub async fn update_variant(
    conn: &mut AnyConnection,
    id: &str,
    v: &VariantDraft,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE variants SET sku = $2, options = $3, weight_grams = $4, barcode = $5, \
         updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(v.sku.as_str())
    .bind(json(&v.options))
    .bind(v.weight_grams)
    .bind(&v.barcode)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    set_prices(conn, id, v).await
}

async fn set_prices(
    conn: &mut AnyConnection,
    variant_id: &str,
    v: &VariantDraft,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM variant_prices WHERE variant_id = $1")
        .bind(variant_id)
        .execute(&mut *conn)
        .await?;
    for (money, compare_at) in &v.prices {
        sqlx::query(
            "INSERT INTO variant_prices (variant_id, currency, amount, compare_at_amount) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(variant_id)
        .bind(money.currency.as_str())
        .bind(money.amount)
        .bind(*compare_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes a variant of a product; false when there was none.
pub async fn delete_variant(
    conn: &mut AnyConnection,
    product_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query("DELETE FROM variant_prices WHERE variant_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM variants WHERE id = $1 AND product_id = $2")
        .bind(id)
        .bind(product_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a product with its variants, prices and category links.
pub async fn delete_product(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM variant_prices WHERE variant_id IN (SELECT id FROM variants WHERE product_id = $1)",
        "DELETE FROM variants WHERE product_id = $1",
        "DELETE FROM product_categories WHERE product_id = $1",
        "DELETE FROM products WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Slugs taken among `base` and `base-N`, to pick a free suffix.
pub async fn slugs_like(conn: &mut AnyConnection, base: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT slug FROM products WHERE slug = $1 OR slug LIKE $2")
        .bind(base)
        .bind(format!("{base}-%"))
        .fetch_all(conn)
        .await
}

/// Loads one product with its variants.
pub async fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Product>, sqlx::Error> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1");
    let rows: Vec<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(assemble(conn, rows).await?.pop())
}

/// Loads one product with its variants by its URL slug.
pub async fn find_by_slug(
    conn: &mut AnyConnection,
    slug: &str,
) -> Result<Option<Product>, sqlx::Error> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE slug = $1");
    let rows: Vec<ProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(slug)
        .fetch_all(&mut *conn)
        .await?;
    Ok(assemble(conn, rows).await?.pop())
}

/// One page of products by id, with their variants.
pub async fn list(
    conn: &mut AnyConnection,
    filter: &ProductFilter,
    page: &PageRequest,
) -> Result<Vec<Product>, sqlx::Error> {
    let mut sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id > $1");
    let mut args: Vec<String> = vec![page.after.clone().unwrap_or_default()];
    if let Some(path) = &filter.category_path {
        args.push(format!("{path}%"));
        sql.push_str(&format!(
            " AND id IN (SELECT pc.product_id FROM product_categories pc JOIN categories c \
             ON c.id = pc.category_id WHERE c.path LIKE ${})",
            args.len()
        ));
    }
    if let Some(status) = filter.status {
        args.push(status.as_str().to_owned());
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    if let Some(brand) = &filter.brand {
        args.push(brand.clone());
        sql.push_str(&format!(" AND brand = ${}", args.len()));
    }
    if let Some(text) = &filter.title_contains {
        // The text is matched literally: its own `%`, `_` and `\` are escaped.
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        args.push(format!("%{escaped}%"));
        sql.push_str(&format!(
            " AND LOWER(title) LIKE ${} ESCAPE '\\'",
            args.len()
        ));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", page.fetch_limit()));
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for arg in args {
        query = query.bind(arg);
    }
    let rows: Vec<ProductRow> = query.fetch_all(&mut *conn).await?;
    assemble(conn, rows).await
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn assemble(
    conn: &mut AnyConnection,
    rows: Vec<ProductRow>,
) -> Result<Vec<Product>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let list = placeholders(ids.len());
    let sql = format!(
        "SELECT id, product_id, sku, options, weight_grams, barcode, available FROM variants \
         WHERE product_id IN ({list}) ORDER BY position, id"
    );
    let mut q = sqlx::query_as::<_, VariantRow>(sqlx::AssertSqlSafe(sql));
    for id in &ids {
        q = q.bind(*id);
    }
    let variants = q.fetch_all(&mut *conn).await?;
    let sql = format!(
        "SELECT p.variant_id, p.currency, p.amount, p.compare_at_amount FROM variant_prices p \
         JOIN variants v ON v.id = p.variant_id WHERE v.product_id IN ({list}) \
         ORDER BY p.currency"
    );
    let mut q = sqlx::query_as::<_, PriceRow>(sqlx::AssertSqlSafe(sql));
    for id in &ids {
        q = q.bind(*id);
    }
    let mut prices: HashMap<String, Vec<Price>> = HashMap::new();
    for p in q.fetch_all(&mut *conn).await? {
        prices.entry(p.variant_id).or_default().push(Price {
            amount: p.amount,
            currency: p.currency,
            compare_at_amount: p.compare_at_amount,
        });
    }
    let sql = format!(
        "SELECT product_id, category_id FROM product_categories WHERE product_id IN ({list}) \
         ORDER BY category_id"
    );
    let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
    for id in &ids {
        q = q.bind(*id);
    }
    let mut categories: HashMap<String, Vec<String>> = HashMap::new();
    for (product_id, category_id) in q.fetch_all(&mut *conn).await? {
        categories.entry(product_id).or_default().push(category_id);
    }
    let mut by_product: HashMap<String, Vec<Variant>> = HashMap::new();
    for v in variants {
        by_product.entry(v.product_id).or_default().push(Variant {
            prices: prices.remove(&v.id).unwrap_or_default(),
            id: v.id,
            sku: v.sku,
            options: serde_json::from_str(&v.options).unwrap_or_default(),
            weight_grams: v.weight_grams,
            barcode: v.barcode,
            available: v.available,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| Product {
            variants: by_product.remove(&r.id).unwrap_or_default(),
            category_ids: categories.remove(&r.id).unwrap_or_default(),
            status: ProductStatus::parse(&r.status).unwrap_or(ProductStatus::Draft),
            tags: serde_json::from_str(&r.tags).unwrap_or_default(),
            attributes: serde_json::from_str(&r.attributes).unwrap_or_default(),
            images: serde_json::from_str(&r.images).unwrap_or_default(),
            in_stock: r.in_stock != 0,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
            id: r.id,
            title: r.title,
            slug: r.slug,
            description: r.description,
            brand: r.brand,
            seo_title: r.seo_title,
            seo_description: r.seo_description,
        })
        .collect())
}

/// Sets a SKU's available units; returns its product id, or `None` for an unknown SKU.
pub async fn set_available(
    conn: &mut AnyConnection,
    sku: &str,
    available: i64,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE variants SET available = $2, updated_at = $3 WHERE sku = $1 RETURNING product_id",
    )
    .bind(sku)
    .bind(available)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Recomputes `in_stock` of a product from its variants.
pub async fn refresh_in_stock(
    conn: &mut AnyConnection,
    product_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products SET updated_at = $2, in_stock = CASE WHEN EXISTS (SELECT 1 FROM variants \
         WHERE product_id = $1 AND available > 0) THEN 1 ELSE 0 END WHERE id = $1",
    )
    .bind(product_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
