//! SQL for teams inside an organization. Every query is filtered by the organization.

use mercato_kernel::pagination::PageRequest;
use sqlx::{AnyConnection, FromRow};

use super::MemberRow;

/// A team.
#[derive(Debug, Clone, FromRow)]
pub struct TeamRow {
    /// `team_…`.
    pub id: String,
    /// The organization it belongs to.
    pub organization_id: String,
    /// Name, unique inside the organization.
    pub name: String,
    /// Free text, may be empty.
    pub description: String,
    /// Epoch microseconds.
    pub created_at: i64,
    /// Epoch microseconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, organization_id, name, description, created_at, updated_at";

/// Inserts a team; a unique violation means the name is taken in the organization.
pub async fn insert(conn: &mut AnyConnection, team: &TeamRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO teams (id, organization_id, name, description, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&team.id)
    .bind(&team.organization_id)
    .bind(&team.name)
    .bind(&team.description)
    .bind(team.created_at)
    .bind(team.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The team `team_id` of organization `org_id`; `None` for another organization's team.
pub async fn get(
    conn: &mut AnyConnection,
    org_id: &str,
    team_id: &str,
) -> Result<Option<TeamRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM teams WHERE organization_id = $1 AND id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(team_id)
        .fetch_optional(conn)
        .await
}

/// The organization's teams by id, after the cursor.
pub async fn list(
    conn: &mut AnyConnection,
    org_id: &str,
    page: &PageRequest,
) -> Result<Vec<TeamRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM teams WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.fetch_limit())
        .fetch_all(conn)
        .await
}

/// Renames a team and/or changes its description.
pub async fn update(
    conn: &mut AnyConnection,
    org_id: &str,
    team_id: &str,
    name: Option<&str>,
    description: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE teams SET name = COALESCE($1, name), description = COALESCE($2, description), \
         updated_at = $3 WHERE organization_id = $4 AND id = $5",
    )
    .bind(name)
    .bind(description)
    .bind(now)
    .bind(org_id)
    .bind(team_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a team and its memberships.
pub async fn delete(
    conn: &mut AnyConnection,
    org_id: &str,
    team_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM team_members WHERE team_id IN \
         (SELECT id FROM teams WHERE organization_id = $1 AND id = $2)",
    )
    .bind(org_id)
    .bind(team_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM teams WHERE organization_id = $1 AND id = $2")
        .bind(org_id)
        .bind(team_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds a user to a team; false when they were in it already.
pub async fn add_member(
    conn: &mut AnyConnection,
    team_id: &str,
    user_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO team_members (team_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (team_id, user_id) DO NOTHING",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes a user from a team; false when they were not in it.
pub async fn remove_member(
    conn: &mut AnyConnection,
    team_id: &str,
    user_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The members of a team (at most `limit`), by user id, with their organization role.
pub async fn members(
    conn: &mut AnyConnection,
    org_id: &str,
    team_id: &str,
    limit: i64,
) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.user_id, u.email, u.name, m.role, t.created_at FROM team_members t \
         JOIN users u ON u.id = t.user_id \
         JOIN organization_members m ON m.user_id = t.user_id AND m.organization_id = $1 \
         WHERE t.team_id = $2 ORDER BY t.user_id LIMIT $3",
    )
    .bind(org_id)
    .bind(team_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
