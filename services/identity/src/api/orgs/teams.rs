//! Teams inside an organization, and their members.

use axum::extract::State;
use axum::http::StatusCode;
use mercato_kernel::auth::Claims;
use mercato_kernel::error::Problem;
use mercato_kernel::id::new_id;
use mercato_kernel::pagination::{MAX_LIMIT, Page, PageParams};
use mercato_kernel::{ApiError, Json, Path, Query};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use super::{MemberResponse, caller_role, check, conflict_on_unique, require_manager, rfc3339};
use crate::api::AppState;
use crate::domain::org;
use crate::store::orgs::{self as orgs_store, teams as store};

/// A team.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamResponse {
    /// `team_…`.
    pub id: String,
    /// The organization.
    pub organization_id: String,
    /// Name, unique inside the organization.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Members (on `GET` of one team; the first 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberResponse>>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<store::TeamRow> for TeamResponse {
    fn from(row: store::TeamRow) -> Self {
        Self {
            id: row.id,
            organization_id: row.organization_id,
            name: row.name,
            description: row.description,
            members: None,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

/// Body of `POST …/teams` and `PATCH …/teams/{team_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamRequest {
    /// 1 to 100 characters (required on create).
    pub name: Option<String>,
    /// At most 500 characters.
    pub description: Option<String>,
}

/// Body of `POST …/teams/{team_id}/members`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamMemberRequest {
    /// A member of the organization.
    pub user_id: String,
}

fn parse(body: &TeamRequest, create: bool) -> Result<(Option<String>, Option<String>), ApiError> {
    let name = match (&body.name, create) {
        (Some(n), _) => Some(org::parse_name(n, "name")),
        (None, true) => Some(Err(mercato_kernel::FieldError::new(
            "name",
            "required",
            "name is required",
        ))),
        (None, false) => None,
    }
    .transpose();
    let description = body
        .description
        .as_deref()
        .map(|d| org::parse_description(d, "description"))
        .transpose();
    check(
        name.as_ref()
            .err()
            .into_iter()
            .chain(description.as_ref().err())
            .cloned()
            .collect(),
    )?;
    Ok((name.unwrap_or_default(), description.unwrap_or_default()))
}

async fn team(
    conn: &mut AnyConnection,
    org_id: &str,
    team_id: &str,
) -> Result<store::TeamRow, ApiError> {
    store::get(conn, org_id, team_id)
        .await?
        .ok_or_else(|| ApiError::not_found("team"))
}

const TEAM_NAME_TAKEN: &str = "the organization has a team with this name";

/// Creates a team (owner or admin).
#[utoipa::path(post, path = "/api/v1/organizations/{org_id}/teams", tag = "organizations",
    params(("org_id" = String, Path)), request_body = TeamRequest, security(("bearer" = [])),
    responses(
        (status = 201, body = TeamResponse),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_team(
    State(state): State<AppState>,
    claims: Claims,
    Path(org_id): Path<String>,
    Json(body): Json<TeamRequest>,
) -> Result<(StatusCode, Json<TeamResponse>), ApiError> {
    let mut tx = state.db.begin().await?;
    require_manager(caller_role(&mut tx, &org_id, &claims).await?)?;
    let (name, description) = parse(&body, true)?;
    let now = now_micros();
    let row = store::TeamRow {
        id: new_id("team"),
        organization_id: org_id,
        name: name.unwrap_or_default(),
        description: description.unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    store::insert(&mut tx, &row)
        .await
        .map_err(|e| conflict_on_unique(e, "team_name_taken", TEAM_NAME_TAKEN))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Lists the organization's teams.
#[utoipa::path(get, path = "/api/v1/organizations/{org_id}/teams", tag = "organizations",
    params(("org_id" = String, Path), PageParams), security(("bearer" = [])),
    responses((status = 200, body = Page<TeamResponse>),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json")))]
pub async fn list_teams(
    State(state): State<AppState>,
    claims: Claims,
    Path(org_id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<TeamResponse>>, ApiError> {
    let page = params.parse()?;
    let mut conn = state.db.pool().acquire().await?;
    caller_role(&mut conn, &org_id, &claims).await?;
    let rows = store::list(&mut conn, &org_id, &page).await?;
    let page = Page::from_rows(rows, &page, |r| r.id.clone());
    Ok(Json(page.map(Into::into)))
}

/// One team with its members.
#[utoipa::path(get, path = "/api/v1/organizations/{org_id}/teams/{team_id}", tag = "organizations",
    params(("org_id" = String, Path), ("team_id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = TeamResponse),
        (status = 404, description = "Not a member, or no such team", body = Problem, content_type = "application/problem+json")))]
pub async fn get_team(
    State(state): State<AppState>,
    claims: Claims,
    Path((org_id, team_id)): Path<(String, String)>,
) -> Result<Json<TeamResponse>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    caller_role(&mut conn, &org_id, &claims).await?;
    let row = team(&mut conn, &org_id, &team_id).await?;
    let members = store::members(&mut conn, &org_id, &team_id, i64::from(MAX_LIMIT)).await?;
    let mut response = TeamResponse::from(row);
    response.members = Some(members.into_iter().map(Into::into).collect());
    Ok(Json(response))
}

/// Renames a team or changes its description (owner or admin).
#[utoipa::path(patch, path = "/api/v1/organizations/{org_id}/teams/{team_id}", tag = "organizations",
    params(("org_id" = String, Path), ("team_id" = String, Path)), request_body = TeamRequest,
    security(("bearer" = [])),
    responses((status = 200, body = TeamResponse),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member, or no such team", body = Problem, content_type = "application/problem+json")))]
pub async fn update_team(
    State(state): State<AppState>,
    claims: Claims,
    Path((org_id, team_id)): Path<(String, String)>,
    Json(body): Json<TeamRequest>,
) -> Result<Json<TeamResponse>, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    team(&mut tx, &org_id, &team_id).await?;
    require_manager(role)?;
    let (name, description) = parse(&body, false)?;
    store::update(
        &mut tx,
        &org_id,
        &team_id,
        name.as_deref(),
        description.as_deref(),
        now_micros(),
    )
    .await
    .map_err(|e| conflict_on_unique(e, "team_name_taken", TEAM_NAME_TAKEN))?;
    let row = team(&mut tx, &org_id, &team_id).await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Deletes a team (owner or admin).
#[utoipa::path(delete, path = "/api/v1/organizations/{org_id}/teams/{team_id}", tag = "organizations",
    params(("org_id" = String, Path), ("team_id" = String, Path)), security(("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member, or no such team", body = Problem, content_type = "application/problem+json")))]
pub async fn delete_team(
    State(state): State<AppState>,
    claims: Claims,
    Path((org_id, team_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    team(&mut tx, &org_id, &team_id).await?;
    require_manager(role)?;
    store::delete(&mut tx, &org_id, &team_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a member of the organization to a team (owner or admin).
#[utoipa::path(post, path = "/api/v1/organizations/{org_id}/teams/{team_id}/members",
    tag = "organizations", params(("org_id" = String, Path), ("team_id" = String, Path)),
    request_body = TeamMemberRequest, security(("bearer" = [])),
    responses((status = 204, description = "Added (or already in the team)"),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such team or member", body = Problem, content_type = "application/problem+json")))]
pub async fn add_team_member(
    State(state): State<AppState>,
    claims: Claims,
    Path((org_id, team_id)): Path<(String, String)>,
    Json(body): Json<TeamMemberRequest>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    team(&mut tx, &org_id, &team_id).await?;
    require_manager(role)?;
    if orgs_store::role_of(&mut tx, &org_id, &body.user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("member"));
    }
    store::add_member(&mut tx, &team_id, &body.user_id, now_micros()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user from a team (owner or admin).
#[utoipa::path(delete, path = "/api/v1/organizations/{org_id}/teams/{team_id}/members/{user_id}",
    tag = "organizations",
    params(("org_id" = String, Path), ("team_id" = String, Path), ("user_id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "Role missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such team or team member", body = Problem, content_type = "application/problem+json")))]
pub async fn remove_team_member(
    State(state): State<AppState>,
    claims: Claims,
    Path((org_id, team_id, user_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    team(&mut tx, &org_id, &team_id).await?;
    require_manager(role)?;
    if !store::remove_member(&mut tx, &team_id, &user_id).await? {
        return Err(ApiError::not_found("team member"));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
