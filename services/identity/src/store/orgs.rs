//! SQL for organizations and their memberships; teams and invitations in submodules.

pub mod invitations;
pub mod teams;

use mercato_kernel::pagination::PageRequest;
use mercato_store::Backend;
use sqlx::{AnyConnection, FromRow};

/// An organization.
#[derive(Debug, Clone, FromRow)]
pub struct OrgRow {
    /// `org_…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unique URL-safe handle.
    pub slug: String,
    /// The user who created it.
    pub created_by: String,
    /// Epoch microseconds.
    pub created_at: i64,
    /// Epoch microseconds.
    pub updated_at: i64,
}

/// An organization seen by one of its members, with the member's role.
#[derive(Debug, Clone, FromRow)]
pub struct MyOrgRow {
    /// `org_…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unique handle.
    pub slug: String,
    /// The caller's role in it.
    pub role: String,
    /// Epoch microseconds.
    pub created_at: i64,
    /// Epoch microseconds.
    pub updated_at: i64,
}

/// A member of an organization or team, with the user's email and name.
#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    /// `usr_…`.
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// The user's name.
    pub name: String,
    /// Organization role (`owner`, `admin`, `member`); empty for team members.
    pub role: String,
    /// When they joined, epoch microseconds.
    pub created_at: i64,
}

/// Inserts an organization.
pub async fn insert(conn: &mut AnyConnection, org: &OrgRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO organizations (id, name, slug, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&org.id)
    .bind(&org.name)
    .bind(&org.slug)
    .bind(&org.created_by)
    .bind(org.created_at)
    .bind(org.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The organization with this id.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<OrgRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, slug, created_by, created_at, updated_at FROM organizations \
         WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Locks the organization's row until the transaction ends (PostgreSQL; SQLite transactions
/// already hold the write lock), so owner changes are serialized.
pub async fn lock(conn: &mut AnyConnection, backend: Backend, id: &str) -> Result<(), sqlx::Error> {
    let sql = match backend {
        Backend::Postgres => "SELECT id FROM organizations WHERE id = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT id FROM organizations WHERE id = $1",
    };
    sqlx::query(sql).bind(id).fetch_optional(conn).await?;
    Ok(())
}

/// Renames an organization and/or changes its slug.
pub async fn update(
    conn: &mut AnyConnection,
    id: &str,
    name: Option<&str>,
    slug: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE organizations SET name = COALESCE($1, name), slug = COALESCE($2, slug), \
         updated_at = $3 WHERE id = $4",
    )
    .bind(name)
    .bind(slug)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The organizations `user_id` belongs to, by id, after the cursor.
pub async fn list_for_user(
    conn: &mut AnyConnection,
    user_id: &str,
    page: &PageRequest,
) -> Result<Vec<MyOrgRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.id, o.name, o.slug, m.role, o.created_at, o.updated_at \
         FROM organizations o JOIN organization_members m ON m.organization_id = o.id \
         WHERE m.user_id = $1 AND o.id > $2 ORDER BY o.id LIMIT $3",
    )
    .bind(user_id)
    .bind(page.after.as_deref().unwrap_or(""))
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await
}

/// Adds a member; a unique violation means they already are one.
pub async fn insert_member(
    conn: &mut AnyConnection,
    org_id: &str,
    user_id: &str,
    role: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO organization_members (organization_id, user_id, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(role)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The role of `user_id` in the organization; `None` when not a member (or no such org).
pub async fn role_of(
    conn: &mut AnyConnection,
    org_id: &str,
    user_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT role FROM organization_members WHERE organization_id = $1 AND user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// One member with their user details.
pub async fn get_member(
    conn: &mut AnyConnection,
    org_id: &str,
    user_id: &str,
) -> Result<Option<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, u.email, u.name, m.role, m.created_at \
         FROM organization_members m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 AND m.user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

/// The members of an organization, by user id, after the cursor.
pub async fn list_members(
    conn: &mut AnyConnection,
    org_id: &str,
    page: &PageRequest,
) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, u.email, u.name, m.role, m.created_at \
         FROM organization_members m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 AND m.user_id > $2 ORDER BY m.user_id LIMIT $3",
    )
    .bind(org_id)
    .bind(page.after.as_deref().unwrap_or(""))
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await
}

/// How many owners the organization has.
pub async fn count_owners(conn: &mut AnyConnection, org_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM organization_members WHERE organization_id = $1 AND role = 'owner'",
    )
    .bind(org_id)
    .fetch_one(conn)
    .await
}

/// Sets a member's role.
pub async fn set_role(
    conn: &mut AnyConnection,
    org_id: &str,
    user_id: &str,
    role: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE organization_members SET role = $1, updated_at = $2 \
         WHERE organization_id = $3 AND user_id = $4",
    )
    .bind(role)
    .bind(now)
    .bind(org_id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes a member from the organization and from its teams.
pub async fn remove_member(
    conn: &mut AnyConnection,
    org_id: &str,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM team_members WHERE user_id = $1 \
         AND team_id IN (SELECT id FROM teams WHERE organization_id = $2)",
    )
    .bind(user_id)
    .bind(org_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A user's normalized email, if the user exists and is not disabled.
pub async fn active_user_email(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1 AND disabled_at IS NULL")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}
