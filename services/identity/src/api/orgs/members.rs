//! Members of an organization: list, change role, remove, transfer ownership.

use axum::extract::State;
use axum::http::StatusCode;
use mercato_kernel::auth::Claims;
use mercato_kernel::error::Problem;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::{ApiError, FieldError, Json, Path, Query};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};

use super::{MemberResponse, caller_role, require_manager};
use crate::api::AppState;
use crate::domain::org::OrgRole;
use crate::store::orgs as store;

/// Body of `PATCH …/members/{user_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberRequest {
    /// `owner`, `admin` or `member`.
    pub role: String,
}

/// Body of `POST …/transfer-ownership`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferOwnershipRequest {
    /// The member who becomes owner.
    pub user_id: String,
}

/// Answer to an ownership transfer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransferOwnershipResponse {
    /// The new owner.
    pub owner: MemberResponse,
    /// The caller, now an admin.
    pub previous_owner: MemberResponse,
}

fn last_owner() -> ApiError {
    ApiError::conflict(
        "last_owner",
        "an organization keeps at least one owner: transfer ownership first",
    )
}

async fn member(
    conn: &mut sqlx::AnyConnection,
    org_id: &str,
    user_id: &str,
) -> Result<store::MemberRow, ApiError> {
    store::get_member(conn, org_id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))
}

/// Lists the organization's members.
#[utoipa::path(get, path = "/api/v1/organizations/{org_id}/members", tag = "organizations",
    params(("org_id" = String, Path), PageParams), security(("bearer" = [])),
    responses(
        (status = 200, body = Page<MemberResponse>),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_members(
    State(state): State<AppState>,
    claims: Claims,
    Path(org_id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<MemberResponse>>, ApiError> {
    let page = params.parse()?;
    let mut conn = state.db.pool().acquire().await?;
    caller_role(&mut conn, &org_id, &claims).await?;
    let rows = store::list_members(&mut conn, &org_id, &page).await?;
    let page = Page::from_rows(rows, &page, |r| r.user_id.clone());
    Ok(Json(page.map(Into::into)))
}

/// Changes a member's role (owner or admin; only owners grant or take the owner role).
#[utoipa::path(patch, path = "/api/v1/organizations/{org_id}/members/{user_id}",
    tag = "organizations", request_body = UpdateMemberRequest, security(("bearer" = [])),
    params(("org_id" = String, Path), ("user_id" = String, Path)),
    responses(
        (status = 200, body = MemberResponse),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Last owner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_member(
    State(state): State<AppState>,
    claims: Claims,
    Path((org_id, user_id)): Path<(String, String)>,
    Json(body): Json<UpdateMemberRequest>,
) -> Result<Json<MemberResponse>, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    store::lock(&mut tx, state.db.backend(), &org_id).await?;
    let target = member(&mut tx, &org_id, &user_id).await?;
    require_manager(role)?;
    let to = OrgRole::parse_field(&body.role, "role").map_err(|e| ApiError::validation(vec![e]))?;
    let from = OrgRole::parse(&target.role).unwrap_or(OrgRole::Member);
    if !role.may_change_role(from, to) {
        return Err(ApiError::forbidden(
            "only owners grant or take the owner role",
        ));
    }
    if from == OrgRole::Owner
        && to != OrgRole::Owner
        && store::count_owners(&mut tx, &org_id).await? <= 1
    {
        return Err(last_owner());
    }
    store::set_role(&mut tx, &org_id, &user_id, to.as_str(), now_micros()).await?;
    let updated = member(&mut tx, &org_id, &user_id).await?;
    tx.commit().await?;
    Ok(Json(updated.into()))
}

/// Removes a member (owner or admin; anyone may leave). The last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/organizations/{org_id}/members/{user_id}",
    tag = "organizations", security(("bearer" = [])),
    params(("org_id" = String, Path), ("user_id" = String, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Last owner", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_member(
    State(state): State<AppState>,
    claims: Claims,
    Path((org_id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    store::lock(&mut tx, state.db.backend(), &org_id).await?;
    let target = member(&mut tx, &org_id, &user_id).await?;
    let target_role = OrgRole::parse(&target.role).unwrap_or(OrgRole::Member);
    if !role.may_remove(target_role, user_id == claims.sub) {
        return Err(ApiError::forbidden(
            "requires the organization's owner or admin role (owners for owners)",
        ));
    }
    if target_role == OrgRole::Owner && store::count_owners(&mut tx, &org_id).await? <= 1 {
        return Err(last_owner());
    }
    store::remove_member(&mut tx, &org_id, &user_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes another member the owner; the caller (an owner) becomes an admin.
#[utoipa::path(post, path = "/api/v1/organizations/{org_id}/transfer-ownership",
    tag = "organizations", request_body = TransferOwnershipRequest, security(("bearer" = [])),
    params(("org_id" = String, Path)),
    responses(
        (status = 200, body = TransferOwnershipResponse),
        (status = 403, description = "Not an owner", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn transfer_ownership(
    State(state): State<AppState>,
    claims: Claims,
    Path(org_id): Path<String>,
    Json(body): Json<TransferOwnershipRequest>,
) -> Result<Json<TransferOwnershipResponse>, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    if role != OrgRole::Owner {
        return Err(ApiError::forbidden("only an owner transfers ownership"));
    }
    if body.user_id == claims.sub {
        return Err(ApiError::validation(vec![FieldError::new(
            "user_id",
            "same_user",
            "choose another member",
        )]));
    }
    store::lock(&mut tx, state.db.backend(), &org_id).await?;
    member(&mut tx, &org_id, &body.user_id).await?;
    let now = now_micros();
    store::set_role(
        &mut tx,
        &org_id,
        &body.user_id,
        OrgRole::Owner.as_str(),
        now,
    )
    .await?;
    store::set_role(&mut tx, &org_id, &claims.sub, OrgRole::Admin.as_str(), now).await?;
    let owner = member(&mut tx, &org_id, &body.user_id).await?;
    let previous_owner = member(&mut tx, &org_id, &claims.sub).await?;
    tx.commit().await?;
    Ok(Json(TransferOwnershipResponse {
        owner: owner.into(),
        previous_owner: previous_owner.into(),
    }))
}
