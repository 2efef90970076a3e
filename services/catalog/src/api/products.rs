//! `/api/v1/products`: products and their variants.
//!
//! Writes need the staff (or admin) role. Reads are public for `active` products; drafts and
//! archived products answer 404 to the public and are visible to staff. `DELETE` deletes a
//! draft for good and archives anything else (orders and history keep pointing at it).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use mercato_kernel::auth::{Claims, MaybeClaims, RequireRole, Role, Staff};
use mercato_kernel::error::{ApiError, FieldError, Json, Path, Problem, Query};
use mercato_kernel::id::parse_id;
use mercato_kernel::pagination::{Page, PageParams};
use serde::Deserialize;

use super::AppState;
use super::product_input::{ProductRequest, VariantRequest};
use crate::domain::product::{Product, ProductStatus};
use crate::ops::categories as category_ops;
use crate::ops::products as ops;
use crate::store::products::{self as store, ProductFilter};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products", get(list_products).post(create_product))
        .route(
            "/api/v1/products/{id}",
            get(get_product)
                .patch(update_product)
                .delete(delete_product),
        )
        .route(
            "/api/v1/products/{id}/variants",
            axum::routing::post(create_variant),
        )
        .route(
            "/api/v1/products/{id}/variants/{variant_id}",
            patch(update_variant).delete(delete_variant),
        )
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_products,
        create_product,
        get_product,
        update_product,
        delete_product,
        create_variant,
        update_variant,
        delete_variant
    ),
    components(schemas(Product, ProductRequest, VariantRequest))
)]
pub struct Doc;

fn is_staff(caller: &Option<Claims>) -> bool {
    caller.as_ref().is_some_and(|c| c.has_role(Role::Staff))
}

/// Filters of `GET /api/v1/products`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Items per page, 1 to 100.
    pub limit: Option<u32>,
    /// Id of the last product of the previous page.
    pub starting_after: Option<String>,
    /// Category id or slug; includes its sub-categories.
    pub category: Option<String>,
    /// Status (staff only; the public sees `active`).
    pub status: Option<ProductStatus>,
    /// Exact brand.
    pub brand: Option<String>,
    /// Text the title contains, ignoring case (≤ 200 characters).
    pub q: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(ListParams),
    responses((status = 200, description = "A page of products", body = Page<Product>),
              (status = 403, description = "Status filter without staff role", body = Problem)))]
async fn list_products(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Product>>, ApiError> {
    let page = PageParams {
        limit: params.limit,
        starting_after: params.starting_after,
    }
    .parse()?;
    let status = match (is_staff(&caller), params.status) {
        (true, status) => status,
        (false, None | Some(ProductStatus::Active)) => Some(ProductStatus::Active),
        (false, Some(_)) => return Err(ApiError::forbidden("only staff can list by status")),
    };
    let category_path = match &params.category {
        Some(key) => Some(category_ops::get(&state.db, key).await?.path),
        None => None,
    };
    let title_contains = match params.q.as_deref().map(str::trim) {
        Some(q) if q.chars().count() > 200 => {
            return Err(ApiError::validation(vec![FieldError::new(
                "q",
                "too_long",
                "at most 200 characters",
            )]));
        }
        Some("") | None => None,
        Some(q) => Some(q.to_owned()),
    };
    let filter = ProductFilter {
        category_path,
        status,
        brand: params.brand,
        title_contains,
    };
    let mut conn = state.db.pool().acquire().await?;
    let rows = store::list(&mut conn, &filter, &page).await?;
    Ok(Json(Page::from_rows(rows, &page, |p| p.id.clone())))
}

#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = ProductRequest,
    responses((status = 201, description = "Created", body = Product),
              (status = 409, description = "Duplicate SKU or slug", body = Problem),
              (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn create_product(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Json(body): Json<ProductRequest>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    let draft = body.parse(true)?;
    let product = ops::create(&state.db, draft).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id, or its slug")),
    responses((status = 200, description = "The product", body = Product),
              (status = 404, description = "Unknown, or not public", body = Problem)))]
async fn get_product(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path(id): Path<String>,
) -> Result<Json<Product>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    // Storefront links name products by slug; ids keep their `prd_` prefix.
    let product = match parse_id("prd", &id, "id") {
        Ok(id) => store::find(&mut conn, id).await?,
        Err(_) if crate::domain::Slug::parse(&id).is_ok() => {
            store::find_by_slug(&mut conn, &id).await?
        }
        Err(_) => return Err(ApiError::not_found("product")),
    };
    match product {
        Some(p) if p.status == ProductStatus::Active || is_staff(&caller) => Ok(Json(p)),
        _ => Err(ApiError::not_found("product")),
    }
}

#[utoipa::path(patch, path = "/api/v1/products/{id}", tag = "products", request_body = ProductRequest,
    params(("id" = String, Path, description = "Product id")),
    responses((status = 200, description = "Updated", body = Product),
              (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn update_product(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
    Json(body): Json<ProductRequest>,
) -> Result<Json<Product>, ApiError> {
    let id = parse_id("prd", &id, "id").map_err(|_| ApiError::not_found("product"))?;
    let draft = body.parse(false)?;
    Ok(Json(ops::update(&state.db, id, draft).await?))
}

#[utoipa::path(delete, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    responses((status = 204, description = "Draft deleted or product archived")),
    security(("bearer" = [])))]
async fn delete_product(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("prd", &id, "id").map_err(|_| ApiError::not_found("product"))?;
    ops::remove(&state.db, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/products/{id}/variants", tag = "products",
    request_body = VariantRequest, params(("id" = String, Path, description = "Product id")),
    responses((status = 201, description = "The product with the new variant", body = Product),
              (status = 409, description = "Duplicate SKU", body = Problem)),
    security(("bearer" = [])))]
async fn create_variant(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
    Json(body): Json<VariantRequest>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    let id = parse_id("prd", &id, "id").map_err(|_| ApiError::not_found("product"))?;
    let variant = body.parse(None)?;
    let product = ops::add_variant(&state.db, id, variant).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[utoipa::path(patch, path = "/api/v1/products/{id}/variants/{variant_id}", tag = "products",
    request_body = VariantRequest,
    params(("id" = String, Path, description = "Product id"),
           ("variant_id" = String, Path, description = "Variant id")),
    responses((status = 200, description = "The product", body = Product)),
    security(("bearer" = [])))]
async fn update_variant(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path((id, variant_id)): Path<(String, String)>,
    Json(body): Json<VariantRequest>,
) -> Result<Json<Product>, ApiError> {
    let build = |current: &_| body.parse(Some(current));
    Ok(Json(
        ops::update_variant(&state.db, &id, &variant_id, build).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/products/{id}/variants/{variant_id}", tag = "products",
    params(("id" = String, Path, description = "Product id"),
           ("variant_id" = String, Path, description = "Variant id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = [])))]
async fn delete_variant(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path((id, variant_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ops::delete_variant(&state.db, &id, &variant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
