//! SQL of the address book.

use sqlx::{AnyConnection, FromRow};

/// A saved address as stored.
#[derive(Debug, Clone, FromRow)]
pub struct AddressRow {
    /// `adr_…`.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Name given by the owner.
    pub label: Option<String>,
    /// The address as JSON.
    pub address: String,
    /// Epoch microseconds.
    pub created_at: i64,
}

/// The user's addresses, newest first.
pub async fn list_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Vec<AddressRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, label, address, created_at FROM addresses WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// How many addresses the user has saved.
pub async fn count_for_user(conn: &mut AnyConnection, user_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM addresses WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(conn)
        .await
}

/// Saves an address.
pub async fn insert(conn: &mut AnyConnection, row: &AddressRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO addresses (id, user_id, label, address, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&row.id)
    .bind(&row.user_id)
    .bind(&row.label)
    .bind(&row.address)
    .bind(row.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes one of the user's addresses; false when they have none of that id.
pub async fn delete(
    conn: &mut AnyConnection,
    user_id: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM addresses WHERE user_id = $1 AND id = $2")
        .bind(user_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
