//! The `users` table.

use mercato_kernel::pagination::PageRequest;
use mercato_store::{Db, Tx};
use sqlx::FromRow;

use crate::domain::user::{Roles, User};

const COLUMNS: &str =
    "id, email, name, password_hash, roles, email_verified_at, disabled_at, created_at, updated_at";

#[derive(FromRow)]
struct UserRow {
    id: String,
    email: String,
    name: String,
    password_hash: String,
    roles: String,
    email_verified_at: Option<i64>,
    disabled_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        let names: Vec<String> = serde_json::from_str(&row.roles).unwrap_or_default();
        Self {
            id: row.id,
            email: row.email,
            name: row.name,
            password_hash: row.password_hash,
            roles: Roles::from_stored(&names),
            email_verified_at: row.email_verified_at,
            disabled_at: row.disabled_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn roles_json(roles: &Roles) -> String {
    serde_json::Value::from(roles.names()).to_string()
}

/// Inserts a user; a taken email fails with a unique violation.
pub async fn insert(tx: &mut Tx, user: &User) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, roles, email_verified_at, \
         disabled_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&user.id)
    .bind(&user.email)
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(roles_json(&user.roles))
    .bind(user.email_verified_at)
    .bind(user.disabled_at)
    .bind(user.created_at)
    .bind(user.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The user with this normalized email.
pub async fn by_email(db: &Db, email: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(email)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(User::from))
}

/// The user with this id.
pub async fn by_id(db: &Db, id: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(User::from))
}

/// The user with this id, inside a transaction.
pub async fn by_id_tx(tx: &mut Tx, id: &str) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    let row: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(User::from))
}

/// A page of users in id (creation) order.
pub async fn list(db: &Db, page: &PageRequest) -> Result<Vec<User>, sqlx::Error> {
    let sql =
        format!("SELECT {COLUMNS} FROM users WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2");
    let rows: Vec<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(page.after.as_deref())
        .bind(page.fetch_limit())
        .fetch_all(db.pool())
        .await?;
    Ok(rows.into_iter().map(User::from).collect())
}

/// Whether any user holds the admin role.
pub async fn any_admin(db: &Db) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE roles LIKE $1")
        .bind("%\"admin\"%")
        .fetch_one(db.pool())
        .await?;
    Ok(count > 0)
}

/// Writes name, roles, disabled and verification state of `user`.
pub async fn update(tx: &mut Tx, user: &User, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET name = $1, roles = $2, disabled_at = $3, email_verified_at = $4, \
         password_hash = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&user.name)
    .bind(roles_json(&user.roles))
    .bind(user.disabled_at)
    .bind(user.email_verified_at)
    .bind(&user.password_hash)
    .bind(now)
    .bind(&user.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
