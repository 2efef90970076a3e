//! SQL of the category tree.

use sqlx::{AnyConnection, FromRow};

use crate::domain::category::Category;

#[derive(FromRow)]
struct CategoryRow {
    id: String,
    parent_id: Option<String>,
    name: String,
    slug: String,
    path: String,
    position: i64,
}

impl From<CategoryRow> for Category {
    fn from(r: CategoryRow) -> Self {
        Category {
            id: r.id,
            parent_id: r.parent_id,
            name: r.name,
            slug: r.slug,
            path: r.path,
            position: r.position,
        }
    }
}

const COLUMNS: &str = "id, parent_id, name, slug, path, position";

/// Every category.
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<Category>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM categories ORDER BY path");
    let rows: Vec<CategoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Category::from).collect())
}

/// One category by id or slug.
pub async fn find(conn: &mut AnyConnection, key: &str) -> Result<Option<Category>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM categories WHERE id = $1 OR slug = $1");
    let row: Option<CategoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Category::from))
}

/// The position after the last child of `parent_id`.
pub async fn next_position(
    conn: &mut AnyConnection,
    parent_id: Option<&str>,
) -> Result<i64, sqlx::Error> {
    let max: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(position) FROM categories WHERE parent_id = $1 OR (parent_id IS NULL AND $2 = 1)",
    )
    .bind(parent_id)
    .bind(i64::from(parent_id.is_none()))
    .fetch_one(conn)
    .await?;
    Ok(max.map_or(0, |m| m + 1))
}

/// Inserts a category; a taken slug is a unique violation.
pub async fn insert(conn: &mut AnyConnection, c: &Category, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO categories (id, parent_id, name, slug, path, position, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&c.id)
    .bind(&c.parent_id)
    .bind(&c.name)
    .bind(&c.slug)
    .bind(&c.path)
    .bind(c.position)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes name, slug, parent and position; when the path changed, rewrites the whole subtree's
/// paths from `old_path` to the new one.
pub async fn update(
    conn: &mut AnyConnection,
    c: &Category,
    old_path: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE categories SET parent_id = $2, name = $3, slug = $4, position = $5, \
         updated_at = $6 WHERE id = $1",
    )
    .bind(&c.id)
    .bind(&c.parent_id)
    .bind(&c.name)
    .bind(&c.slug)
    .bind(c.position)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if c.path != old_path {
        let keep_from = i64::try_from(old_path.len() + 1).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE categories SET path = $1 || substr(path, CAST($2 AS INTEGER)), updated_at = $4 \
             WHERE path LIKE $3",
        )
        .bind(&c.path)
        .bind(keep_from)
        .bind(format!("{old_path}%"))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Counts of (children, products) of a category.
pub async fn usage(conn: &mut AnyConnection, id: &str) -> Result<(i64, i64), sqlx::Error> {
    let children: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM categories WHERE parent_id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let products: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM product_categories WHERE category_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    Ok((children, products))
}

/// Deletes a category row.
pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM categories WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many of `ids` exist.
pub async fn count_existing(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<usize, sqlx::Error> {
    let mut n = 0;
    for id in ids {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM categories WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        n += usize::from(found.is_some());
    }
    Ok(n)
}
