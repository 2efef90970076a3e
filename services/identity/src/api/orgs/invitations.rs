//! Invitations by email: create (the token goes out as a `notification.email` event, only
//! its SHA-256 is stored), list, revoke, and accept by the signed-in invitee.

use axum::extract::State;
use axum::http::StatusCode;
use mercato_contracts::subjects;
use mercato_kernel::auth::Claims;
use mercato_kernel::error::Problem;
use mercato_kernel::id::new_id;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::{ApiError, Json, Path, Query};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};

use super::{OrganizationResponse, caller_role, check, event, require_manager, rfc3339};
use crate::api::AppState;
use crate::domain::email::Email;
use crate::domain::org::{self, OrgRole};
use crate::store::orgs::{self as orgs_store, invitations as store};

/// Template name of the invitation email.
const TEMPLATE: &str = "organization_invitation";

/// An invitation (never its token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationResponse {
    /// Invitation id.
    pub id: String,
    /// The organization.
    pub organization_id: String,
    /// The invitee's normalized email.
    pub email: String,
    /// Role given on acceptance.
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<store::InvitationRow> for InvitationResponse {
    fn from(row: store::InvitationRow) -> Self {
        let status = if row.accepted_at.is_some() {
            "accepted"
        } else if row.revoked_at.is_some() {
            "revoked"
        } else if row.expires_at <= now_micros() {
            "expired"
        } else {
            "pending"
        };
        Self {
            id: row.id,
            organization_id: row.organization_id,
            email: row.email,
            role: row.role,
            status: status.to_owned(),
            expires_at: rfc3339(row.expires_at),
            created_at: rfc3339(row.created_at),
        }
    }
}

/// Body of `POST …/invitations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    /// Who to invite.
    pub email: String,
    /// `admin` or `member` (`owner` by owners only); default `member`.
    pub role: Option<String>,
}

/// Body of `POST /api/v1/organizations/invitations/accept`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The token from the invitation email.
    pub token: String,
}

/// Invites someone by email (owner or admin); valid for 7 days.
#[utoipa::path(post, path = "/api/v1/organizations/{org_id}/invitations", tag = "organizations",
    params(("org_id" = String, Path)), request_body = CreateInvitationRequest,
    security(("bearer" = [])),
    responses((status = 201, body = InvitationResponse),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json")))]
pub async fn create_invitation(
    State(state): State<AppState>,
    claims: Claims,
    Path(org_id): Path<String>,
    Json(body): Json<CreateInvitationRequest>,
) -> Result<(StatusCode, Json<InvitationResponse>), ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    require_manager(role)?;
    let email = Email::parse(&body.email, "email");
    let invited_as = OrgRole::parse_field(body.role.as_deref().unwrap_or("member"), "role");
    check(
        email
            .as_ref()
            .err()
            .into_iter()
            .chain(invited_as.as_ref().err())
            .cloned()
            .collect(),
    )?;
    let (Ok(email), Ok(invited_as)) = (email, invited_as) else {
        return Err(ApiError::internal(anyhow::anyhow!("checked fields failed")));
    };
    if !role.may_invite(invited_as) {
        return Err(ApiError::forbidden("only owners invite owners"));
    }
    let already: Option<String> = sqlx::query_scalar(
        "SELECT m.user_id FROM organization_members m JOIN users u ON u.id = m.user_id \
         WHERE m.organization_id = $1 AND u.email = $2",
    )
    .bind(&org_id)
    .bind(email.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if already.is_some() {
        return Err(ApiError::conflict(
            "already_member",
            "this email belongs to a member",
        ));
    }
    let organization = orgs_store::get(&mut tx, &org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    let (token, token_hash) = org::new_invitation_token();
    let now = now_micros();
    let row = store::InvitationRow {
        id: new_id("inv"),
        organization_id: org_id.clone(),
        email: email.into_string(),
        role: invited_as.as_str().to_owned(),
        invited_by: claims.sub.clone(),
        expires_at: now + org::INVITATION_TTL_MICROS,
        accepted_at: None,
        revoked_at: None,
        created_at: now,
    };
    store::insert(&mut tx, &row, &token_hash).await?;
    let data = serde_json::json!({
        "to": row.email,
        "template": TEMPLATE,
        "variables": {"organization": organization.name, "token": token, "role": row.role},
    });
    let mail = event(subjects::NOTIFICATION_EMAIL, &row.id, data)?;
    mercato_bus::enqueue(&mut tx, &mail)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Lists the organization's invitations (owner or admin).
#[utoipa::path(get, path = "/api/v1/organizations/{org_id}/invitations", tag = "organizations",
    params(("org_id" = String, Path), PageParams), security(("bearer" = [])),
    responses((status = 200, body = Page<InvitationResponse>),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json")))]
pub async fn list_invitations(
    State(state): State<AppState>,
    claims: Claims,
    Path(org_id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<InvitationResponse>>, ApiError> {
    let page = params.parse()?;
    let mut conn = state.db.pool().acquire().await?;
    require_manager(caller_role(&mut conn, &org_id, &claims).await?)?;
    let rows = store::list(&mut conn, &org_id, &page).await?;
    let page = Page::from_rows(rows, &page, |r| r.id.clone());
    Ok(Json(page.map(Into::into)))
}

/// Revokes a pending invitation (owner or admin).
#[utoipa::path(delete, path = "/api/v1/organizations/{org_id}/invitations/{invitation_id}",
    tag = "organizations", params(("org_id" = String, Path), ("invitation_id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "Revoked"),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending", body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    claims: Claims,
    Path((org_id, invitation_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    if !store::exists(&mut tx, &org_id, &invitation_id).await? {
        return Err(ApiError::not_found("invitation"));
    }
    require_manager(role)?;
    if !store::revoke(&mut tx, &org_id, &invitation_id, now_micros()).await? {
        return Err(ApiError::conflict(
            "invitation_not_pending",
            "the invitation was already used or revoked",
        ));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation: the signed-in user whose email it was sent to becomes a member.
#[utoipa::path(post, path = "/api/v1/organizations/invitations/accept", tag = "organizations",
    request_body = AcceptInvitationRequest, security(("bearer" = [])),
    responses((status = 200, body = OrganizationResponse),
        (status = 403, description = "Invitation is for another email", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Used, revoked, or already a member", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired", body = Problem, content_type = "application/problem+json")))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    claims: Claims,
    Json(body): Json<AcceptInvitationRequest>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let mut tx = state.db.begin().await?;
    let invitation = match body.token.len() {
        1..=200 => store::find_by_token_hash(&mut tx, &org::token_hash(body.token.trim())).await?,
        _ => None,
    }
    .ok_or_else(|| ApiError::not_found("invitation"))?;
    let email = orgs_store::active_user_email(&mut tx, &claims.sub)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the account does not exist or is disabled"))?;
    if email != invitation.email {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invitation_email_mismatch",
            "the invitation was sent to another email address",
        ));
    }
    let now = now_micros();
    if invitation.accepted_at.is_some() || invitation.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "invitation_not_pending",
            "the invitation was already used or revoked",
        ));
    }
    if invitation.expires_at <= now {
        return Err(ApiError::new(
            StatusCode::GONE,
            "invitation_expired",
            "the invitation has expired",
        ));
    }
    let org_id = invitation.organization_id.clone();
    if orgs_store::role_of(&mut tx, &org_id, &claims.sub)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(
            "already_member",
            "you are a member already",
        ));
    }
    if !store::mark_accepted(&mut tx, &invitation.id, &claims.sub, now).await? {
        return Err(ApiError::conflict(
            "invitation_not_pending",
            "the invitation was already used or revoked",
        ));
    }
    orgs_store::insert_member(&mut tx, &org_id, &claims.sub, &invitation.role, now).await?;
    let data = serde_json::json!({
        "organization_id": org_id, "user_id": claims.sub, "role": invitation.role,
        "invitation_id": invitation.id,
    });
    let added = event(subjects::ORGANIZATION_MEMBER_ADDED, &org_id, data)?;
    mercato_bus::enqueue(&mut tx, &added)
        .await
        .map_err(ApiError::internal)?;
    let organization = orgs_store::get(&mut tx, &org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    tx.commit().await?;
    let role = OrgRole::parse(&invitation.role).unwrap_or(OrgRole::Member);
    Ok(Json(OrganizationResponse::new(organization, role)))
}
