//! `/api/v1/categories`: the category tree. Reads are public; writes need the staff role.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::{ApiError, Json, Path, Problem};
use serde::{Deserialize, Deserializer, Serialize};

use super::AppState;
use crate::domain::Slug;
use crate::domain::category::{self, Category, CategoryNode};
use crate::domain::product::Errors;
use crate::ops::categories::{self as ops, CategoryChange, NewCategory};
use crate::store::categories as store;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/categories",
            get(list_categories).post(create_category),
        )
        .route(
            "/api/v1/categories/{id}",
            get(get_category)
                .patch(update_category)
                .delete(delete_category),
        )
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_categories,
        create_category,
        get_category,
        update_category,
        delete_category
    ),
    components(schemas(CategoryNode, CategoryResponse, CategoryRequest))
)]
pub struct Doc;

fn double<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A category to create (`name` required) or change; `"parent_id": null` moves it to the root.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRequest {
    /// Display name, ≤ 100 characters.
    pub name: Option<String>,
    /// URL slug; made from the name when absent.
    pub slug: Option<String>,
    /// Parent category (`cat_…`).
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    /// Order among siblings; after the last when absent.
    pub position: Option<i64>,
}

/// A category, without its children.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryResponse {
    /// `cat_…`.
    pub id: String,
    /// Parent category.
    pub parent_id: Option<String>,
    /// Display name.
    pub name: String,
    /// URL slug.
    pub slug: String,
    /// Ids from the root down, `/cat_a/cat_b/`.
    pub path: String,
    /// Order among siblings.
    pub position: i64,
}

impl From<Category> for CategoryResponse {
    fn from(c: Category) -> Self {
        Self {
            id: c.id,
            parent_id: c.parent_id,
            name: c.name,
            slug: c.slug,
            path: c.path,
            position: c.position,
        }
    }
}

impl CategoryRequest {
    fn parse(self, creating: bool) -> Result<CategoryChange, ApiError> {
        let mut e = Errors::default();
        let name = self
            .name
            .and_then(|n| e.check("name", category::parse_name(&n)));
        if creating && name.is_none() && e.0.is_empty() {
            e.add("name", "required", "a name is required");
        }
        let slug = self.slug.and_then(|s| e.check("slug", Slug::parse(&s)));
        if !e.0.is_empty() {
            return Err(ApiError::validation(e.0));
        }
        Ok(CategoryChange {
            name,
            slug,
            parent_id: self.parent_id,
            position: self.position,
        })
    }
}

#[utoipa::path(get, path = "/api/v1/categories", tag = "categories",
    responses((status = 200, description = "Root categories with nested children", body = Vec<CategoryNode>)))]
async fn list_categories(
    State(state): State<AppState>,
) -> Result<Json<Vec<CategoryNode>>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    let all = store::all(&mut conn).await?;
    Ok(Json(category::build_tree(all)))
}

#[utoipa::path(post, path = "/api/v1/categories", tag = "categories", request_body = CategoryRequest,
    responses((status = 201, description = "Created", body = CategoryResponse),
              (status = 409, description = "Duplicate slug", body = Problem),
              (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn create_category(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Json(body): Json<CategoryRequest>,
) -> Result<(StatusCode, Json<CategoryResponse>), ApiError> {
    let change = body.parse(true)?;
    let new = NewCategory {
        name: change.name.unwrap_or_default(),
        slug: change.slug,
        parent_id: change.parent_id.flatten(),
        position: change.position,
    };
    let created = ops::create(&state.db, new).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(get, path = "/api/v1/categories/{id}", tag = "categories",
    params(("id" = String, Path, description = "Category id or slug")),
    responses((status = 200, description = "The category", body = CategoryResponse),
              (status = 404, description = "Unknown", body = Problem)))]
async fn get_category(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CategoryResponse>, ApiError> {
    Ok(Json(ops::get(&state.db, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/categories/{id}", tag = "categories", request_body = CategoryRequest,
    params(("id" = String, Path, description = "Category id")),
    responses((status = 200, description = "Updated", body = CategoryResponse),
              (status = 422, description = "Invalid fields or a cycle", body = Problem)),
    security(("bearer" = [])))]
async fn update_category(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
    Json(body): Json<CategoryRequest>,
) -> Result<Json<CategoryResponse>, ApiError> {
    let change = body.parse(false)?;
    Ok(Json(ops::update(&state.db, &id, change).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/categories/{id}", tag = "categories",
    params(("id" = String, Path, description = "Category id")),
    responses((status = 204, description = "Deleted"),
              (status = 409, description = "Has sub-categories or products", body = Problem)),
    security(("bearer" = [])))]
async fn delete_category(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ops::delete(&state.db, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
