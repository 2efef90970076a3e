//! Organizations themselves: create, list mine, get, update.

use axum::extract::State;
use axum::http::StatusCode;
use mercato_contracts::subjects;
use mercato_kernel::auth::Claims;
use mercato_kernel::error::Problem;
use mercato_kernel::id::new_id;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::{ApiError, Json, Path, Query};
use mercato_store::now_micros;
use serde::Deserialize;
use sqlx::AnyConnection;

use super::{
    FromField, OrganizationResponse, caller_role, check, conflict_on_unique, event, require_manager,
};
use crate::api::AppState;
use crate::domain::org::{self, OrgRole};
use crate::store::orgs::{self as store, OrgRow};

/// Body of `POST /api/v1/organizations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganizationRequest {
    /// 1 to 100 characters, any script.
    pub name: String,
    /// 2 to 63 of `a-z0-9-`; derived from the name when absent.
    pub slug: Option<String>,
}

/// Body of `PATCH /api/v1/organizations/{org_id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganizationRequest {
    /// New name.
    pub name: Option<String>,
    /// New slug.
    pub slug: Option<String>,
}

/// Creates an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations",
    request_body = CreateOrganizationRequest, security(("bearer" = [])),
    responses(
        (status = 201, body = OrganizationResponse),
        (status = 409, description = "Slug taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_organization(
    State(state): State<AppState>,
    claims: Claims,
    Json(body): Json<CreateOrganizationRequest>,
) -> Result<(StatusCode, Json<OrganizationResponse>), ApiError> {
    let name = org::parse_name(&body.name, "name");
    let slug = body
        .slug
        .as_deref()
        .map(|s| org::parse_slug(s, "slug"))
        .transpose();
    check(
        name.as_ref()
            .err()
            .into_iter()
            .chain(slug.as_ref().err())
            .cloned()
            .collect(),
    )?;
    let (name, slug) = (
        name.map_err(ApiError::from_field)?,
        slug.map_err(ApiError::from_field)?,
    );
    let mut tx = state.db.begin().await?;
    if store::active_user_email(&mut tx, &claims.sub)
        .await?
        .is_none()
    {
        return Err(ApiError::unauthorized(
            "the account does not exist or is disabled",
        ));
    }
    let slug = match slug {
        Some(slug) => slug,
        None => free_slug(&mut tx, &name).await?,
    };
    let now = now_micros();
    let row = OrgRow {
        id: new_id("org"),
        name,
        slug,
        created_by: claims.sub.clone(),
        created_at: now,
        updated_at: now,
    };
    store::insert(&mut tx, &row).await.map_err(|e| {
        conflict_on_unique(e, "slug_taken", "an organization with this slug exists")
    })?;
    store::insert_member(&mut tx, &row.id, &claims.sub, OrgRole::Owner.as_str(), now).await?;
    let data = serde_json::json!({
        "organization_id": row.id, "name": row.name, "slug": row.slug, "owner_id": claims.sub,
    });
    let created = event(subjects::ORGANIZATION_CREATED, &row.id, data)?;
    mercato_bus::enqueue(&mut tx, &created)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(OrganizationResponse::new(row, OrgRole::Owner)),
    ))
}

/// A slug derived from `name` that no organization uses yet.
async fn free_slug(conn: &mut AnyConnection, name: &str) -> Result<String, ApiError> {
    let base = org::slugify(name).unwrap_or_else(|| "org".to_owned());
    let base = base
        .get(..56)
        .unwrap_or(&base)
        .trim_end_matches('-')
        .to_owned();
    let mut slug = base.clone();
    for _ in 0..5 {
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM organizations WHERE slug = $1")
                .bind(&slug)
                .fetch_optional(&mut *conn)
                .await?;
        if taken.is_none() && slug.len() >= 2 {
            return Ok(slug);
        }
        slug = format!("{base}-{}", org::slug_suffix());
    }
    Err(ApiError::conflict(
        "slug_taken",
        "could not find a free slug: choose one",
    ))
}

/// Lists the organizations the caller belongs to.
#[utoipa::path(get, path = "/api/v1/organizations", tag = "organizations",
    params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = Page<OrganizationResponse>)))]
pub async fn list_organizations(
    State(state): State<AppState>,
    claims: Claims,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<OrganizationResponse>>, ApiError> {
    let page = params.parse()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = store::list_for_user(&mut conn, &claims.sub, &page).await?;
    let page = Page::from_rows(rows, &page, |r| r.id.clone());
    Ok(Json(page.map(Into::into)))
}

/// One organization of the caller.
#[utoipa::path(get, path = "/api/v1/organizations/{org_id}", tag = "organizations",
    params(("org_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = OrganizationResponse),
        (status = 404, description = "Not a member, or no such organization", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_organization(
    State(state): State<AppState>,
    claims: Claims,
    Path(org_id): Path<String>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    let role = caller_role(&mut conn, &org_id, &claims).await?;
    let row = store::get(&mut conn, &org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(Json(OrganizationResponse::new(row, role)))
}

/// Renames an organization or changes its slug (owner or admin).
#[utoipa::path(patch, path = "/api/v1/organizations/{org_id}", tag = "organizations",
    params(("org_id" = String, Path)), request_body = UpdateOrganizationRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = OrganizationResponse),
        (status = 403, description = "Not an owner or admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a member", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_organization(
    State(state): State<AppState>,
    claims: Claims,
    Path(org_id): Path<String>,
    Json(body): Json<UpdateOrganizationRequest>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = caller_role(&mut tx, &org_id, &claims).await?;
    require_manager(role)?;
    let name = body
        .name
        .as_deref()
        .map(|n| org::parse_name(n, "name"))
        .transpose();
    let slug = body
        .slug
        .as_deref()
        .map(|s| org::parse_slug(s, "slug"))
        .transpose();
    check(
        name.as_ref()
            .err()
            .into_iter()
            .chain(slug.as_ref().err())
            .cloned()
            .collect(),
    )?;
    let (name, slug) = (
        name.map_err(ApiError::from_field)?,
        slug.map_err(ApiError::from_field)?,
    );
    store::update(
        &mut tx,
        &org_id,
        name.as_deref(),
        slug.as_deref(),
        now_micros(),
    )
    .await
    .map_err(|e| conflict_on_unique(e, "slug_taken", "an organization with this slug exists"))?;
    let row = store::get(&mut tx, &org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    tx.commit().await?;
    Ok(Json(OrganizationResponse::new(row, role)))
}
