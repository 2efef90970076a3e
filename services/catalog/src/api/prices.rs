//! `POST /api/v1/prices/quote`: prices a cart with the promotions that apply, and says why.
//!
//! Public (orders call it). At most 500 lines, each SKU at most once (a repeated SKU is a
//! 422 `duplicate_sku`, not merged), quantities 1 to 10 000. Unknown SKUs, SKUs of products
//! not for sale, and SKUs without a price in the currency are 422 naming the line. The
//! pricing rules are in [`crate::domain::pricing`].

use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use mercato_kernel::error::Problem;
use mercato_kernel::money::{Currency, Money};
use mercato_kernel::{ApiError, FieldError, Json};
use mercato_store::{Db, now_micros};
use serde::Deserialize;

use super::AppState;
use crate::domain::pricing::{self, Candidate, CartLine, Quote, QuoteRequest};
use crate::domain::promotion::normalize_coupon;
use crate::store::promotions as store;

/// Most lines in one quote.
pub const MAX_LINES: usize = 500;
/// Most units of one line.
pub const MAX_QUANTITY: i64 = 10_000;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/prices/quote", post(quote_prices))
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(paths(quote_prices))]
pub struct Doc;

/// One line to price.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteLineRequest {
    /// Variant SKU.
    pub sku: String,
    /// Units, 1 to 10 000.
    pub quantity: i64,
}

/// Body of `POST /api/v1/prices/quote`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteBody {
    /// 1 to 500 lines, each SKU once.
    pub lines: Vec<QuoteLineRequest>,
    /// Coupon code (case-insensitive).
    pub coupon: Option<String>,
    /// ISO 4217 code of the quote.
    pub currency: String,
    /// The customer, for per-customer usage limits.
    pub customer_id: Option<String>,
}

/// A checked quote request: the lines' SKUs and quantities in order.
struct Checked {
    currency: Currency,
    lines: Vec<(String, i64)>,
    coupon: Option<String>,
    customer_id: Option<String>,
}

fn check(body: QuoteBody) -> Result<Checked, ApiError> {
    let mut errors = Vec::new();
    let currency = Currency::parse(&body.currency)
        .map_err(|e| {
            errors.push(FieldError::new(
                "currency",
                "invalid_currency",
                e.to_string(),
            ))
        })
        .ok();
    if body.lines.is_empty() || body.lines.len() > MAX_LINES {
        errors.push(FieldError::new("lines", "invalid_length", "1 to 500 lines"));
    }
    let mut seen = HashSet::new();
    for (i, line) in body.lines.iter().enumerate().take(MAX_LINES) {
        if line.sku.is_empty() || line.sku.len() > 100 {
            errors.push(FieldError::new(
                format!("lines[{i}].sku"),
                "invalid_sku",
                "1 to 100 characters",
            ));
        } else if !seen.insert(line.sku.as_str()) {
            let msg = format!("sku `{}` appears more than once", line.sku);
            errors.push(FieldError::new(
                format!("lines[{i}].sku"),
                "duplicate_sku",
                msg,
            ));
        }
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            errors.push(FieldError::new(
                format!("lines[{i}].quantity"),
                "out_of_range",
                "1 to 10000",
            ));
        }
    }
    let too_long = |v: &Option<String>| v.as_ref().is_some_and(|s| s.is_empty() || s.len() > 64);
    if too_long(&body.coupon) {
        errors.push(FieldError::new(
            "coupon",
            "invalid_length",
            "1 to 64 characters",
        ));
    }
    if too_long(&body.customer_id) {
        errors.push(FieldError::new(
            "customer_id",
            "invalid_length",
            "1 to 64 characters",
        ));
    }
    match currency {
        Some(currency) if errors.is_empty() => Ok(Checked {
            currency,
            lines: body
                .lines
                .into_iter()
                .map(|l| (l.sku, l.quantity))
                .collect(),
            // A malformed code cannot match any promotion: it is reported as unknown.
            coupon: body.coupon.map(|c| normalize_coupon(&c).unwrap_or(c)),
            customer_id: body.customer_id,
        }),
        _ => Err(ApiError::validation(errors)),
    }
}

/// Reads the variants, prices, categories and candidate promotions the quote needs.
async fn load(db: &Db, req: &Checked) -> Result<(Vec<CartLine>, Vec<Candidate>), ApiError> {
    let mut conn = db.pool().acquire().await?;
    let skus: Vec<String> = req.lines.iter().map(|(s, _)| s.clone()).collect();
    let variants = store::priced_variants(&mut conn, &skus, req.currency).await?;
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(skus.len());
    for (i, (sku, quantity)) in req.lines.iter().enumerate() {
        let field = format!("lines[{i}].sku");
        match variants.iter().find(|v| &v.sku == sku) {
            Some(v) if v.status != "active" || v.amount.is_none() => {
                let (code, msg) = match v.amount {
                    _ if v.status != "active" => {
                        ("unknown_sku", format!("sku `{sku}` is not for sale"))
                    }
                    _ => (
                        "no_price",
                        format!("sku `{sku}` has no price in {}", req.currency),
                    ),
                };
                errors.push(FieldError::new(field, code, msg));
            }
            Some(v) => lines.push(CartLine {
                sku: sku.clone(),
                product_id: v.product_id.clone(),
                category_ids: Vec::new(),
                unit_price: Money::new(v.amount.unwrap_or_default(), req.currency),
                quantity: *quantity,
                title: v.title.clone(),
                weight_grams: v.weight_grams,
            }),
            None => errors.push(FieldError::new(
                field,
                "unknown_sku",
                format!("unknown sku `{sku}`"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let product_ids: Vec<String> = lines.iter().map(|l| l.product_id.clone()).collect();
    let mut ancestors = store::category_ancestors(&mut conn, &product_ids).await?;
    for line in &mut lines {
        line.category_ids = ancestors.remove(&line.product_id).unwrap_or_default();
    }
    let promotions = store::quote_candidates(&mut conn, req.coupon.as_deref()).await?;
    let ids: Vec<String> = promotions.iter().map(|p| p.id.clone()).collect();
    let usage = store::usage(&mut conn, &ids, req.customer_id.as_deref()).await?;
    let candidates = promotions
        .into_iter()
        .map(|p| Candidate {
            usage: usage.get(&p.id).copied().unwrap_or_default(),
            promotion: p,
        })
        .collect();
    Ok((lines, candidates))
}

/// Prices a cart: per-line and order totals, applied promotions, and rejected ones with why.
#[utoipa::path(
    post, path = "/api/v1/prices/quote", tag = "prices",
    request_body = QuoteBody,
    responses(
        (status = 200, description = "The quote", body = Quote),
        (status = 422, description = "Invalid lines, unknown SKU or missing price", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn quote_prices(
    State(state): State<AppState>,
    Json(body): Json<QuoteBody>,
) -> Result<Json<Quote>, ApiError> {
    let checked = check(body)?;
    let (lines, candidates) = load(&state.db, &checked).await?;
    let request = QuoteRequest {
        currency: checked.currency,
        coupon: checked.coupon,
        now: now_micros(),
    };
    let quote = pricing::quote(&lines, &candidates, &request).map_err(|_| {
        ApiError::invalid_field("lines", "amount_overflow", "the cart total is too large")
    })?;
    Ok(Json(quote))
}
