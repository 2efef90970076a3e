//! SQL for invitations to an organization. Tokens are stored as SHA-256 only.

use mercato_kernel::pagination::PageRequest;
use sqlx::{AnyConnection, FromRow};

/// An invitation.
#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    /// `inv_…` id (not the token).
    pub id: String,
    /// The organization invited to.
    pub organization_id: String,
    /// Normalized email of the invitee.
    pub email: String,
    /// Role given on acceptance.
    pub role: String,
    /// Who invited.
    pub invited_by: String,
    /// Epoch microseconds.
    pub expires_at: i64,
    /// Epoch microseconds, once accepted.
    pub accepted_at: Option<i64>,
    /// Epoch microseconds, once revoked.
    pub revoked_at: Option<i64>,
    /// Epoch microseconds.
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, organization_id, email, role, invited_by, expires_at, accepted_at, revoked_at, created_at";

/// Inserts an invitation with the hash of its token.
pub async fn insert(
    conn: &mut AnyConnection,
    invitation: &InvitationRow,
    token_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO organization_invitations (id, organization_id, email, role, token_hash, \
         invited_by, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&invitation.id)
    .bind(&invitation.organization_id)
    .bind(&invitation.email)
    .bind(&invitation.role)
    .bind(token_hash)
    .bind(&invitation.invited_by)
    .bind(invitation.expires_at)
    .bind(invitation.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The organization's invitations by id, after the cursor.
pub async fn list(
    conn: &mut AnyConnection,
    org_id: &str,
    page: &PageRequest,
) -> Result<Vec<InvitationRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM organization_invitations WHERE organization_id = $1 AND id > $2 \
         ORDER BY id LIMIT $3"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(page.fetch_limit())
        .fetch_all(conn)
        .await
}

/// Revokes a pending invitation of the organization; false when there is none to revoke.
pub async fn revoke(
    conn: &mut AnyConnection,
    org_id: &str,
    id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE organization_invitations SET revoked_at = $1 WHERE organization_id = $2 \
         AND id = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(org_id)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the organization has an invitation with this id (pending or not).
pub async fn exists(conn: &mut AnyConnection, org_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM organization_invitations WHERE organization_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// The invitation whose token hashes to `token_hash`.
pub async fn find_by_token_hash(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<InvitationRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM organization_invitations WHERE token_hash = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(token_hash)
        .fetch_optional(conn)
        .await
}

/// Marks a pending invitation accepted; false when it was accepted or revoked meanwhile.
pub async fn mark_accepted(
    conn: &mut AnyConnection,
    id: &str,
    user_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE organization_invitations SET accepted_at = $1, accepted_by = $2 \
         WHERE id = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
