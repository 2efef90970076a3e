//! `/api/v1/organizations…`: organizations, members, teams, invitations.
//!
//! Tenancy: every route of an organization first looks up the caller's membership in the
//! database. Not a member (or no such organization) answers 404, exactly like an unknown id;
//! a member without the organization role the action needs answers 403.

mod invitations;
mod members;
mod organizations;
mod teams;

use axum::Router;
use axum::routing::{delete, get, patch, post};
use mercato_bus::Event;
use mercato_kernel::auth::Claims;
use mercato_kernel::id::parse_id;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError};
use serde::Serialize;
use sqlx::AnyConnection;

use super::AppState;
use crate::domain::org::OrgRole;
use crate::store::orgs::{self as store, MemberRow, MyOrgRow, OrgRow};

/// Every organization route.
pub fn routes() -> Router<AppState> {
    const ORG: &str = "/api/v1/organizations/{org_id}";
    Router::new()
        .route(
            "/api/v1/organizations",
            post(organizations::create_organization).get(organizations::list_organizations),
        )
        .route(
            "/api/v1/organizations/invitations/accept",
            post(invitations::accept_invitation),
        )
        .route(
            ORG,
            get(organizations::get_organization).patch(organizations::update_organization),
        )
        .route(
            &format!("{ORG}/transfer-ownership"),
            post(members::transfer_ownership),
        )
        .route(&format!("{ORG}/members"), get(members::list_members))
        .route(
            &format!("{ORG}/members/{{user_id}}"),
            patch(members::update_member).delete(members::remove_member),
        )
        .route(
            &format!("{ORG}/teams"),
            post(teams::create_team).get(teams::list_teams),
        )
        .route(
            &format!("{ORG}/teams/{{team_id}}"),
            get(teams::get_team)
                .patch(teams::update_team)
                .delete(teams::delete_team),
        )
        .route(
            &format!("{ORG}/teams/{{team_id}}/members"),
            post(teams::add_team_member),
        )
        .route(
            &format!("{ORG}/teams/{{team_id}}/members/{{user_id}}"),
            delete(teams::remove_team_member),
        )
        .route(
            &format!("{ORG}/invitations"),
            post(invitations::create_invitation).get(invitations::list_invitations),
        )
        .route(
            &format!("{ORG}/invitations/{{invitation_id}}"),
            delete(invitations::revoke_invitation),
        )
}

/// OpenAPI paths of the organization routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    organizations::create_organization,
    organizations::list_organizations,
    organizations::get_organization,
    organizations::update_organization,
    members::list_members,
    members::update_member,
    members::remove_member,
    members::transfer_ownership,
    teams::create_team,
    teams::list_teams,
    teams::get_team,
    teams::update_team,
    teams::delete_team,
    teams::add_team_member,
    teams::remove_team_member,
    invitations::create_invitation,
    invitations::list_invitations,
    invitations::revoke_invitation,
    invitations::accept_invitation,
))]
pub struct Doc;

/// The caller's role in `org_id`; 404 when they are not a member or the id is malformed.
pub(super) async fn caller_role(
    conn: &mut AnyConnection,
    org_id: &str,
    claims: &Claims,
) -> Result<OrgRole, ApiError> {
    if parse_id("org", org_id, "org_id").is_err() {
        return Err(ApiError::not_found("organization"));
    }
    let role = store::role_of(conn, org_id, &claims.sub).await?;
    role.as_deref()
        .and_then(OrgRole::parse)
        .ok_or_else(|| ApiError::not_found("organization"))
}

/// 403 unless `role` manages the organization.
pub(super) fn require_manager(role: OrgRole) -> Result<(), ApiError> {
    if role.manages() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "requires the organization's owner or admin role",
        ))
    }
}

/// 422 listing every invalid field, when there is one.
pub(super) fn check(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

/// An event of this service, about `subject`.
pub(super) fn event(kind: &str, subject: &str, data: serde_json::Value) -> Result<Event, ApiError> {
    Ok(Event::new(crate::SOURCE, kind, data)
        .map_err(ApiError::internal)?
        .with_subject(subject))
}

/// Maps a unique violation to a 409 with `code`, anything else to an internal error.
pub(super) fn conflict_on_unique(
    err: sqlx::Error,
    code: &'static str,
    detail: &'static str,
) -> ApiError {
    if mercato_store::is_unique_violation(&err) {
        ApiError::conflict(code, detail)
    } else {
        ApiError::from(err)
    }
}

/// An organization as its members see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrganizationResponse {
    /// `org_…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unique handle.
    pub slug: String,
    /// The caller's role in it: `owner`, `admin` or `member`.
    pub role: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl OrganizationResponse {
    fn new(org: OrgRow, role: OrgRole) -> Self {
        Self::from(MyOrgRow {
            id: org.id,
            name: org.name,
            slug: org.slug,
            role: role.as_str().to_owned(),
            created_at: org.created_at,
            updated_at: org.updated_at,
        })
    }
}

impl From<MyOrgRow> for OrganizationResponse {
    fn from(row: MyOrgRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            slug: row.slug,
            role: row.role,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

/// A member of an organization or team.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberResponse {
    /// `usr_…`.
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// The user's name.
    pub name: String,
    /// Organization role.
    pub role: String,
    /// RFC 3339.
    pub joined_at: String,
}

impl From<MemberRow> for MemberResponse {
    fn from(row: MemberRow) -> Self {
        Self {
            user_id: row.user_id,
            email: row.email,
            name: row.name,
            role: row.role,
            joined_at: rfc3339(row.created_at),
        }
    }
}

/// Extension for turning one field error into a 422.
pub(super) trait FromField {
    /// 422 for one field error.
    fn from_field(err: FieldError) -> Self;
}

impl FromField for ApiError {
    fn from_field(err: FieldError) -> Self {
        ApiError::validation(vec![err])
    }
}
