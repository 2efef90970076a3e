//! `/api/v1/promotions`: staff manage promotions and record their redemptions.
//!
//! Percentages are integer basis points (`basis_points`, 1 to 10 000: `1500` = 15 %); fixed
//! amounts are `amounts`, one `Money` per currency. PATCH takes any subset of the fields
//! (`null` clears an optional one) and checks the merged promotion as a whole. DELETE hides
//! the promotion and frees its coupon code; its redemptions stay.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::id::new_id;
use mercato_kernel::money::Money;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path, Query};
use mercato_store::{Db, is_unique_violation, now_micros};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::domain::promotion::{Discount, Promotion, PromotionInput, PromotionSpec, Target};
use crate::store::promotions::{self as store, Redemption};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/promotions",
            post(create_promotion).get(list_promotions),
        )
        .route(
            "/api/v1/promotions/{id}",
            get(get_promotion)
                .patch(update_promotion)
                .delete(delete_promotion),
        )
        .route(
            "/api/v1/promotions/{id}/redemptions",
            post(redeem_promotion),
        )
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_promotion,
    list_promotions,
    get_promotion,
    update_promotion,
    delete_promotion,
    redeem_promotion
))]
pub struct Doc;

/// A promotion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PromotionResponse {
    /// `promo_…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `percentage` or `fixed_amount`.
    pub kind: &'static str,
    /// For `percentage`: basis points (`1500` = 15 %).
    pub basis_points: Option<i64>,
    /// For `fixed_amount`: amount off per currency.
    pub amounts: Option<Vec<Money>>,
    /// `all`, `categories` or `products`.
    pub target: &'static str,
    /// Targeted category or product ids.
    pub target_ids: Vec<String>,
    /// Upper-case coupon code, if one is needed.
    pub coupon_code: Option<String>,
    /// RFC 3339.
    pub starts_at: Option<String>,
    /// RFC 3339.
    pub ends_at: Option<String>,
    /// Most redemptions in total.
    pub usage_limit: Option<i64>,
    /// Most redemptions per customer.
    pub usage_limit_per_customer: Option<i64>,
    /// Cart subtotal needed.
    pub minimum_subtotal: Option<Money>,
    /// Whether it combines with other stackable promotions.
    pub stackable: bool,
    /// Whether it is in force.
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<Promotion> for PromotionResponse {
    fn from(p: Promotion) -> Self {
        let s = p.spec;
        let (kind, basis_points, amounts) = match s.discount {
            Discount::Percentage(bp) => ("percentage", Some(bp), None),
            Discount::FixedAmount(list) => ("fixed_amount", None, Some(list)),
        };
        Self {
            id: p.id,
            name: s.name,
            kind,
            basis_points,
            amounts,
            target: s.target.kind(),
            target_ids: s.target.ids().to_vec(),
            coupon_code: s.coupon_code,
            starts_at: s.starts_at.map(rfc3339),
            ends_at: s.ends_at.map(rfc3339),
            usage_limit: s.usage_limit,
            usage_limit_per_customer: s.usage_limit_per_customer,
            minimum_subtotal: s.minimum_subtotal,
            stackable: s.stackable,
            active: s.active,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// Body of `POST /api/v1/promotions/{id}/redemptions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedemptionRequest {
    /// The order that used the promotion, 1 to 64 characters.
    pub order_id: String,
    /// The customer who placed it; required when the promotion has a per-customer limit.
    pub customer_id: Option<String>,
}

/// A recorded redemption.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedemptionResponse {
    /// `promo_…`.
    pub promotion_id: String,
    /// The order.
    pub order_id: String,
    /// The customer, if given.
    pub customer_id: Option<String>,
    /// RFC 3339.
    pub redeemed_at: String,
}

impl From<Redemption> for RedemptionResponse {
    fn from(r: Redemption) -> Self {
        Self {
            promotion_id: r.promotion_id,
            order_id: r.order_id,
            customer_id: r.customer_id,
            redeemed_at: rfc3339(r.redeemed_at),
        }
    }
}

/// Checks the fields, and that the targeted categories or products exist.
async fn parse_spec(db: &Db, input: PromotionInput) -> Result<PromotionSpec, ApiError> {
    let spec = PromotionSpec::parse(input).map_err(ApiError::validation)?;
    let table = match spec.target {
        Target::All => return Ok(spec),
        Target::Categories(_) => "categories",
        Target::Products(_) => "products",
    };
    let mut conn = db.pool().acquire().await?;
    let missing = store::missing_ids(&mut conn, table, spec.target.ids()).await?;
    if missing.is_empty() {
        return Ok(spec);
    }
    let errors = missing
        .iter()
        .map(|id| FieldError::new("target_ids", "unknown_id", format!("no such id `{id}`")))
        .collect();
    Err(ApiError::validation(errors))
}

/// Stores a new or changed promotion; another active promotion's coupon code is a 409.
async fn save(db: &Db, promotion: &Promotion, update: bool) -> Result<(), ApiError> {
    let mut conn = db.pool().acquire().await?;
    match store::save(&mut conn, promotion, update).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::not_found("promotion")),
        Err(e) if is_unique_violation(&e) => Err(ApiError::conflict(
            "coupon_code_taken",
            "another active promotion has this coupon code",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn load(db: &Db, id: &str) -> Result<Promotion, ApiError> {
    let mut conn = db.pool().acquire().await?;
    store::get(&mut conn, id, None)
        .await?
        .ok_or_else(|| ApiError::not_found("promotion"))
}

/// Creates a promotion.
#[utoipa::path(
    post, path = "/api/v1/promotions", tag = "promotions",
    request_body = PromotionInput, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = PromotionResponse),
        (status = 409, description = "Coupon code taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_promotion(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Json(input): Json<PromotionInput>,
) -> Result<(StatusCode, Json<PromotionResponse>), ApiError> {
    let spec = parse_spec(&state.db, input).await?;
    let now = now_micros();
    let promotion = Promotion {
        id: new_id("promo"),
        spec,
        created_at: now,
        updated_at: now,
    };
    save(&state.db, &promotion, false).await?;
    Ok((StatusCode::CREATED, Json(promotion.into())))
}

/// Lists promotions by id.
#[utoipa::path(
    get, path = "/api/v1/promotions", tag = "promotions",
    params(PageParams), security(("bearer" = [])),
    responses((status = 200, description = "A page of promotions", body = Page<PromotionResponse>))
)]
pub async fn list_promotions(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<PromotionResponse>>, ApiError> {
    let page = params.parse()?;
    let mut conn = state.db.pool().acquire().await?;
    let rows = store::list(&mut conn, &page).await?;
    Ok(Json(
        Page::from_rows(rows, &page, |p| p.id.clone()).map(PromotionResponse::from),
    ))
}

/// One promotion.
#[utoipa::path(
    get, path = "/api/v1/promotions/{id}", tag = "promotions", security(("bearer" = [])),
    responses(
        (status = 200, description = "The promotion", body = PromotionResponse),
        (status = 404, description = "No such promotion", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_promotion(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PromotionResponse>, ApiError> {
    Ok(Json(load(&state.db, &id).await?.into()))
}

/// Changes some fields of a promotion.
#[utoipa::path(
    patch, path = "/api/v1/promotions/{id}", tag = "promotions",
    request_body = PromotionInput, security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed promotion", body = PromotionResponse),
        (status = 404, description = "No such promotion", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_promotion(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(patch): Json<PromotionInput>,
) -> Result<Json<PromotionResponse>, ApiError> {
    let mut promotion = load(&state.db, &id).await?;
    let merged = PromotionInput::from(&promotion.spec).overlay(patch);
    promotion.spec = parse_spec(&state.db, merged).await?;
    promotion.updated_at = now_micros();
    save(&state.db, &promotion, true).await?;
    Ok(Json(promotion.into()))
}

/// Deletes a promotion (its redemptions are kept).
#[utoipa::path(
    delete, path = "/api/v1/promotions/{id}", tag = "promotions", security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such promotion", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_promotion(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    match store::delete(&mut conn, &id, now_micros()).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("promotion")),
    }
}

/// Records that an order used a promotion, enforcing its usage limits atomically.
///
/// Idempotent by order: the same order again answers the stored redemption with 200.
#[utoipa::path(
    post, path = "/api/v1/promotions/{id}/redemptions", tag = "promotions",
    request_body = RedemptionRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "Recorded", body = RedemptionResponse),
        (status = 200, description = "Already recorded for this order", body = RedemptionResponse),
        (status = 409, description = "`usage_limit_reached`, or the order redeemed it for another customer", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn redeem_promotion(
    _: RequireRole<Staff>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<RedemptionRequest>,
) -> Result<(StatusCode, Json<RedemptionResponse>), ApiError> {
    check_ref("order_id", Some(&body.order_id))?;
    check_ref("customer_id", body.customer_id.as_deref())?;
    let redemption = Redemption {
        promotion_id: id,
        order_id: body.order_id,
        customer_id: body.customer_id,
        redeemed_at: now_micros(),
    };
    let (created, stored) = redeem(&state.db, redemption).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stored.into())))
}

/// In one transaction holding the promotion's row (PostgreSQL `FOR UPDATE`; SQLite's
/// `BEGIN IMMEDIATE` holds the whole database): replays an existing redemption of the order,
/// or checks the limits against the current counts and inserts. True when inserted.
async fn redeem(db: &Db, r: Redemption) -> Result<(bool, Redemption), ApiError> {
    let mut tx = db.begin().await?;
    let promotion = store::get(&mut tx, &r.promotion_id, Some(db.backend()))
        .await?
        .ok_or_else(|| ApiError::not_found("promotion"))?;
    if let Some(existing) = store::find_redemption(&mut tx, &r.promotion_id, &r.order_id).await? {
        if existing.customer_id != r.customer_id {
            return Err(ApiError::conflict(
                "redemption_conflict",
                "this order already redeemed the promotion for another customer",
            ));
        }
        return Ok((false, existing));
    }
    let spec = &promotion.spec;
    if spec.usage_limit_per_customer.is_some() && r.customer_id.is_none() {
        return Err(ApiError::invalid_field(
            "customer_id",
            "required",
            "the promotion has a per-customer limit",
        ));
    }
    let ids = [r.promotion_id.clone()];
    let usage = store::usage(&mut tx, &ids, r.customer_id.as_deref()).await?;
    let usage = usage.get(&r.promotion_id).copied().unwrap_or_default();
    let total_full = spec.usage_limit.is_some_and(|l| usage.total >= l);
    let customer_full = spec
        .usage_limit_per_customer
        .is_some_and(|l| usage.customer.unwrap_or(0) >= l);
    if total_full || customer_full {
        let who = if total_full {
            "in total"
        } else {
            "by this customer"
        };
        return Err(ApiError::conflict(
            "usage_limit_reached",
            format!("the promotion has been used as often as allowed {who}"),
        ));
    }
    store::insert_redemption(&mut tx, &r).await?;
    tx.commit().await?;
    Ok((true, r))
}

fn check_ref(field: &'static str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > 64 => Err(ApiError::invalid_field(
            field,
            "invalid_length",
            "1 to 64 characters",
        )),
        _ => Ok(()),
    }
}
