//! SQL of promotions, their redemptions, and what a price quote reads.

use std::collections::HashMap;

use mercato_kernel::money::{Currency, Money};
use mercato_kernel::pagination::PageRequest;
use mercato_store::Backend;
use sqlx::{AnyConnection, FromRow};

use crate::domain::pricing::Usage;
use crate::domain::promotion::{Discount, Promotion, PromotionSpec, Target};

const COLUMNS: &str = "id, name, kind, basis_points, amounts, target, target_ids, coupon_code, \
    starts_at, ends_at, usage_limit, usage_limit_per_customer, minimum_subtotal_amount, \
    minimum_subtotal_currency, stackable, active, created_at, updated_at";

/// A `promotions` row as stored.
#[derive(Debug, Clone, FromRow)]
struct PromotionRow {
    id: String,
    name: String,
    kind: String,
    basis_points: Option<i64>,
    amounts: Option<String>,
    target: String,
    target_ids: String,
    coupon_code: Option<String>,
    starts_at: Option<i64>,
    ends_at: Option<i64>,
    usage_limit: Option<i64>,
    usage_limit_per_customer: Option<i64>,
    minimum_subtotal_amount: Option<i64>,
    minimum_subtotal_currency: Option<String>,
    stackable: i64,
    active: i64,
    created_at: i64,
    updated_at: i64,
}

fn corrupt(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("promotion row has an invalid {what}").into())
}

impl TryFrom<PromotionRow> for Promotion {
    type Error = sqlx::Error;

    fn try_from(r: PromotionRow) -> Result<Self, sqlx::Error> {
        let discount = match (r.kind.as_str(), r.basis_points, r.amounts) {
            ("percentage", Some(bp), _) => Discount::Percentage(bp),
            ("fixed_amount", _, Some(json)) => {
                Discount::FixedAmount(serde_json::from_str(&json).map_err(|_| corrupt("amounts"))?)
            }
            _ => return Err(corrupt("kind")),
        };
        let ids: Vec<String> =
            serde_json::from_str(&r.target_ids).map_err(|_| corrupt("target_ids"))?;
        let target = match r.target.as_str() {
            "all" => Target::All,
            "categories" => Target::Categories(ids),
            "products" => Target::Products(ids),
            _ => return Err(corrupt("target")),
        };
        let minimum_subtotal = match (r.minimum_subtotal_amount, r.minimum_subtotal_currency) {
            (Some(amount), Some(code)) => Some(Money::new(
                amount,
                Currency::parse(&code).map_err(|_| corrupt("currency"))?,
            )),
            _ => None,
        };
        Ok(Promotion {
            id: r.id,
            spec: PromotionSpec {
                name: r.name,
                discount,
                target,
                coupon_code: r.coupon_code,
                starts_at: r.starts_at,
                ends_at: r.ends_at,
                usage_limit: r.usage_limit,
                usage_limit_per_customer: r.usage_limit_per_customer,
                minimum_subtotal,
                stackable: r.stackable != 0,
                active: r.active != 0,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn rows_into(rows: Vec<PromotionRow>) -> Result<Vec<Promotion>, sqlx::Error> {
    rows.into_iter().map(Promotion::try_from).collect()
}

/// Inserts a promotion, or (`update`) rewrites every field of an existing one; a unique
/// violation means another active promotion has the coupon code. False when the promotion
/// to update is gone.
pub async fn save(
    conn: &mut AnyConnection,
    p: &Promotion,
    update: bool,
) -> Result<bool, sqlx::Error> {
    let s = &p.spec;
    let (kind, bp, amounts) = match &s.discount {
        Discount::Percentage(bp) => ("percentage", Some(*bp), None),
        Discount::FixedAmount(list) => ("fixed_amount", None, Some(json(list))),
    };
    let sql = if update {
        "UPDATE promotions SET name = $2, kind = $3, basis_points = $4, amounts = $5, \
         target = $6, target_ids = $7, coupon_code = $8, starts_at = $9, ends_at = $10, \
         usage_limit = $11, usage_limit_per_customer = $12, minimum_subtotal_amount = $13, \
         minimum_subtotal_currency = $14, stackable = $15, active = $16, updated_at = $18 \
         WHERE id = $1 AND deleted_at IS NULL AND created_at = $17"
    } else {
        "INSERT INTO promotions (id, name, kind, basis_points, amounts, target, target_ids, \
         coupon_code, starts_at, ends_at, usage_limit, usage_limit_per_customer, \
         minimum_subtotal_amount, minimum_subtotal_currency, stackable, active, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18)"
    };
    let done = sqlx::query(sql)
        .bind(&p.id)
        .bind(&s.name)
        .bind(kind)
        .bind(bp)
        .bind(amounts)
        .bind(s.target.kind())
        .bind(json(s.target.ids()))
        .bind(&s.coupon_code)
        .bind(s.starts_at)
        .bind(s.ends_at)
        .bind(s.usage_limit)
        .bind(s.usage_limit_per_customer)
        .bind(s.minimum_subtotal.map(|m| m.amount))
        .bind(s.minimum_subtotal.map(|m| m.currency.to_string()))
        .bind(i64::from(s.stackable))
        .bind(i64::from(s.active))
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}

/// The promotion `id`, unless deleted; on PostgreSQL `lock` takes its row lock.
pub async fn get(
    conn: &mut AnyConnection,
    id: &str,
    lock: Option<Backend>,
) -> Result<Option<Promotion>, sqlx::Error> {
    let suffix = if lock == Some(Backend::Postgres) {
        " FOR UPDATE"
    } else {
        ""
    };
    let sql =
        format!("SELECT {COLUMNS} FROM promotions WHERE id = $1 AND deleted_at IS NULL{suffix}");
    let row: Option<PromotionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(Promotion::try_from).transpose()
}

/// Promotions by id, after the cursor.
pub async fn list(
    conn: &mut AnyConnection,
    page: &PageRequest,
) -> Result<Vec<Promotion>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM promotions WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.fetch_limit())
        .fetch_all(conn)
        .await?;
    rows_into(rows)
}

/// Marks a promotion deleted (and inactive, which frees its coupon code); false if none.
pub async fn delete(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE promotions SET deleted_at = $2, active = 0, updated_at = $2 \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of `ids` have no row in `table` (`categories` or `products`).
pub async fn missing_ids(
    conn: &mut AnyConnection,
    table: &'static str,
    ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id FROM {table} WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    let found: Vec<String> = query.fetch_all(conn).await?;
    Ok(ids
        .iter()
        .filter(|id| !found.contains(id))
        .cloned()
        .collect())
}

/// A redemption of a promotion by an order.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Redemption {
    /// `promo_…`.
    pub promotion_id: String,
    /// The order that used it.
    pub order_id: String,
    /// The customer who placed the order, if known.
    pub customer_id: Option<String>,
    /// Epoch µs.
    pub redeemed_at: i64,
}

/// The redemption of `promotion_id` by `order_id`, if recorded.
pub async fn find_redemption(
    conn: &mut AnyConnection,
    promotion_id: &str,
    order_id: &str,
) -> Result<Option<Redemption>, sqlx::Error> {
    sqlx::query_as(
        "SELECT promotion_id, order_id, customer_id, redeemed_at FROM promotion_redemptions \
         WHERE promotion_id = $1 AND order_id = $2",
    )
    .bind(promotion_id)
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// Records a redemption; a unique violation means the order already redeemed it.
pub async fn insert_redemption(
    conn: &mut AnyConnection,
    r: &Redemption,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO promotion_redemptions (promotion_id, order_id, customer_id, redeemed_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&r.promotion_id)
    .bind(&r.order_id)
    .bind(&r.customer_id)
    .bind(r.redeemed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Redemptions of each promotion in `ids`, in total and by `customer_id`.
pub async fn usage(
    conn: &mut AnyConnection,
    ids: &[String],
    customer_id: Option<&str>,
) -> Result<HashMap<String, Usage>, sqlx::Error> {
    let mut out: HashMap<String, Usage> = ids
        .iter()
        .map(|id| {
            let customer = customer_id.map(|_| 0);
            (id.clone(), Usage { total: 0, customer })
        })
        .collect();
    if ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT promotion_id, COUNT(*), \
         SUM(CASE WHEN customer_id = $1 THEN 1 ELSE 0 END) \
         FROM promotion_redemptions WHERE promotion_id IN ({}) GROUP BY promotion_id",
        placeholders(2, ids.len())
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(customer_id.unwrap_or(""));
    for id in ids {
        query = query.bind(id);
    }
    let rows: Vec<(String, i64, i64)> = query.fetch_all(conn).await?;
    for (id, total, mine) in rows {
        out.insert(
            id,
            Usage {
                total,
                customer: customer_id.map(|_| mine),
            },
        );
    }
    Ok(out)
}

/// Active promotions a quote considers: every automatic one, and the one with `coupon`.
pub async fn quote_candidates(
    conn: &mut AnyConnection,
    coupon: Option<&str>,
) -> Result<Vec<Promotion>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM promotions WHERE active = 1 AND deleted_at IS NULL \
         AND (coupon_code IS NULL OR coupon_code = $1) ORDER BY id"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(coupon.unwrap_or(""))
        .fetch_all(conn)
        .await?;
    rows_into(rows)
}

/// A variant as a quote sees it.
#[derive(Debug, Clone, FromRow)]
pub struct PricedVariant {
    /// SKU.
    pub sku: String,
    /// Its product.
    pub product_id: String,
    /// The product's status (`draft`, `active`, `archived`).
    pub status: String,
    /// Unit price in the asked currency, if it has one.
    pub amount: Option<i64>,
    /// The product's title.
    pub title: String,
    /// Weight of one unit.
    pub weight_grams: Option<i64>,
}

/// The variants with these SKUs, with their price in `currency`.
pub async fn priced_variants(
    conn: &mut AnyConnection,
    skus: &[String],
    currency: Currency,
) -> Result<Vec<PricedVariant>, sqlx::Error> {
    let sql = format!(
        "SELECT v.sku, v.product_id, p.status, vp.amount, p.title, v.weight_grams FROM variants v \
         JOIN products p ON p.id = v.product_id \
         LEFT JOIN variant_prices vp ON vp.variant_id = v.id AND vp.currency = $1 \
         WHERE v.sku IN ({})",
        placeholders(2, skus.len())
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(currency.to_string());
    for sku in skus {
        query = query.bind(sku);
    }
    query.fetch_all(conn).await
}

/// For each product, its categories and their ancestors (from the materialized paths).
pub async fn category_ancestors(
    conn: &mut AnyConnection,
    product_ids: &[String],
) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    if product_ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT pc.product_id, c.path FROM product_categories pc \
         JOIN categories c ON c.id = pc.category_id WHERE pc.product_id IN ({})",
        placeholders(1, product_ids.len())
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for id in product_ids {
        query = query.bind(id);
    }
    let rows: Vec<(String, String)> = query.fetch_all(conn).await?;
    for (product_id, path) in rows {
        let ids = out.entry(product_id).or_default();
        ids.extend(path.split('/').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    Ok(out)
}
