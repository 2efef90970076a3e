//! Reads products from the catalog database into [`ProductDoc`]s (the index's only input).

use std::collections::HashMap;

use mercato_store::Db;
use sqlx::Row;

use super::schema::ProductDoc;

/// Products per page when rebuilding.
pub const PAGE_SIZE: i64 = 1_000;

/// The active product `id`, or `None` when it is missing or not active (then it leaves the index).
pub async fn load_one(db: &Db, id: &str) -> sqlx::Result<Option<ProductDoc>> {
    Ok(load_range(db, id, id).await?.into_iter().next())
}

/// Up to [`PAGE_SIZE`] active products with ids after `after`, in id order.
pub async fn load_page(db: &Db, after: &str) -> sqlx::Result<Vec<ProductDoc>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM products WHERE status = 'active' AND id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(PAGE_SIZE)
    .fetch_all(db.pool())
    .await?;
    match (ids.first(), ids.last()) {
        (Some(first), Some(last)) => load_range(db, first, last).await,
        _ => Ok(Vec::new()),
    }
}

/// Ids of the products (any status) changed at or after `since` (microseconds).
pub async fn changed_since(db: &Db, since: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT id FROM products WHERE updated_at >= $1 ORDER BY id")
        .bind(since)
        .fetch_all(db.pool())
        .await
}

/// Active products with `first <= id <= last`, with their categories, prices and stock.
async fn load_range(db: &Db, first: &str, last: &str) -> sqlx::Result<Vec<ProductDoc>> {
    let rows = sqlx::query(
        "SELECT id, title, slug, description, brand, tags, attributes, in_stock, created_at \
         FROM products WHERE status = 'active' AND id >= $1 AND id <= $2 ORDER BY id",
    )
    .bind(first)
    .bind(last)
    .fetch_all(db.pool())
    .await?;
    let mut products = Vec::with_capacity(rows.len());
    let mut position = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        let tags: String = row.try_get("tags")?;
        let attributes: String = row.try_get("attributes")?;
        let in_stock: i64 = row.try_get("in_stock")?;
        position.insert(id.clone(), products.len());
        products.push(ProductDoc {
            id,
            title: row.try_get("title")?,
            slug: row.try_get("slug")?,
            description: row.try_get("description")?,
            brand: row.try_get("brand")?,
            tags: parse_tags(&tags),
            attributes: parse_attributes(&attributes),
            categories: Vec::new(),
            prices: Vec::new(),
            in_stock: in_stock != 0,
            created_at: row.try_get("created_at")?,
        });
    }
    if products.is_empty() {
        return Ok(products);
    }

    let categories = sqlx::query(
        "SELECT pc.product_id, c.path FROM product_categories pc \
         JOIN categories c ON c.id = pc.category_id \
         WHERE pc.product_id >= $1 AND pc.product_id <= $2 ORDER BY pc.product_id, c.path",
    )
    .bind(first)
    .bind(last)
    .fetch_all(db.pool())
    .await?;
    for row in categories {
        let id: String = row.try_get("product_id")?;
        let path: String = row.try_get("path")?;
        if let Some(&i) = position.get(&id) {
            let segments = path.split('/').filter(|s| !s.is_empty()).map(str::to_owned);
            products[i].categories.push(segments.collect());
        }
    }

    let prices = sqlx::query(
        "SELECT v.product_id, vp.currency, MIN(vp.amount) AS amount FROM variants v \
         JOIN variant_prices vp ON vp.variant_id = v.id \
         WHERE v.product_id >= $1 AND v.product_id <= $2 \
         GROUP BY v.product_id, vp.currency ORDER BY v.product_id, vp.currency",
    )
    .bind(first)
    .bind(last)
    .fetch_all(db.pool())
    .await?;
    for row in prices {
        let id: String = row.try_get("product_id")?;
        let amount: i64 = row.try_get("amount")?;
        if let Some(&i) = position.get(&id) {
            let currency: String = row.try_get("currency")?;
            products[i]
                .prices
                .push((currency, u64::try_from(amount).unwrap_or(0)));
        }
    }

    let stock = sqlx::query(
        "SELECT DISTINCT product_id FROM variants \
         WHERE product_id >= $1 AND product_id <= $2 AND available > 0",
    )
    .bind(first)
    .bind(last)
    .fetch_all(db.pool())
    .await?;
    for row in stock {
        let id: String = row.try_get("product_id")?;
        if let Some(&i) = position.get(&id) {
            products[i].in_stock = true;
        }
    }
    Ok(products)
}

/// Tags from their JSON array; anything else gives none rather than failing the index.
fn parse_tags(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Attributes from their JSON object; non-string values are indexed as their JSON text.
fn parse_attributes(json: &str) -> Vec<(String, String)> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).unwrap_or_default();
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_gives_empty_tags_and_attributes() {
        assert!(parse_tags("not json").is_empty());
        assert!(parse_attributes("[1]").is_empty());
        assert_eq!(
            parse_attributes(r#"{"colour":"red","size":42}"#),
            vec![
                ("colour".to_owned(), "red".to_owned()),
                ("size".to_owned(), "42".to_owned())
            ]
        );
    }
}
