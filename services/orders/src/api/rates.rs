//! `/api/v1/shipping-rates` and `/api/v1/tax-rates`: what carts and orders add to the
//! catalog's prices. Anyone may read them (the storefront shows them); staff change them.
//!
//! Shipping: among the active rates of the cart's currency that serve the destination country
//! and the parcel's weight band, the cheapest applies (free above `free_over`). No rate at all
//! in a currency means free shipping. Tax: the destination region's rate, else its country's;
//! inclusive rates are inside prices, exclusive ones are added.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::money::Currency;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::domain::{MAX_TOTAL, is_country};
use crate::store::{self, ShippingRateRow, TaxRateRow};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/shipping-rates",
            get(list_shipping_rates).post(create_shipping_rate),
        )
        .route("/api/v1/shipping-rates/{id}", put(replace_shipping_rate))
        .route("/api/v1/tax-rates", get(list_tax_rates).put(put_tax_rate))
        .route("/api/v1/tax-rates/{id}", delete(delete_tax_rate))
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_shipping_rates,
        create_shipping_rate,
        replace_shipping_rate,
        list_tax_rates,
        put_tax_rate,
        delete_tax_rate
    ),
    components(schemas(ShippingRateRequest, ShippingRateView, TaxRateRequest, TaxRateView))
)]
pub struct Doc;

/// A shipping rate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingRateRequest {
    /// Shown to buyers, 1 to 100 characters.
    pub name: String,
    /// ISO 3166-1 alpha-2 codes it ships to; empty or absent: everywhere.
    #[serde(default)]
    pub countries: Vec<String>,
    /// ISO 4217.
    pub currency: String,
    /// Price, minor units, ≥ 0.
    pub amount: i64,
    /// Lightest parcel it takes (default 0).
    #[serde(default)]
    pub min_weight_grams: i64,
    /// Parcels must weigh less than this.
    pub max_weight_grams: Option<i64>,
    /// Free from this discounted subtotal on.
    pub free_over: Option<i64>,
    /// Default true.
    pub active: Option<bool>,
}

/// A shipping rate as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShippingRateView {
    /// `shr_…`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Countries; empty: everywhere.
    pub countries: Vec<String>,
    /// ISO 4217.
    pub currency: String,
    /// Price.
    pub amount: i64,
    /// Lightest parcel.
    pub min_weight_grams: i64,
    /// Parcels weigh less than this.
    pub max_weight_grams: Option<i64>,
    /// Free from this subtotal.
    pub free_over: Option<i64>,
    /// Whether carts use it.
    pub active: bool,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<ShippingRateRow> for ShippingRateView {
    fn from(r: ShippingRateRow) -> Self {
        let countries = r.to_domain().countries;
        Self {
            id: r.id,
            name: r.name,
            countries,
            currency: r.currency,
            amount: r.amount,
            min_weight_grams: r.min_weight_grams,
            max_weight_grams: r.max_weight_grams,
            free_over: r.free_over,
            active: r.active == 1,
            updated_at: rfc3339(r.updated_at),
        }
    }
}

fn shipping_row(
    id: String,
    body: ShippingRateRequest,
    created_at: i64,
) -> Result<ShippingRateRow, ApiError> {
    let mut errors = Vec::new();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 100 {
        errors.push(FieldError::new(
            "name",
            "invalid_length",
            "1 to 100 characters",
        ));
    }
    let mut countries = Vec::new();
    for (i, c) in body.countries.iter().enumerate() {
        let c = c.trim().to_ascii_uppercase();
        if !is_country(&c) {
            errors.push(FieldError::new(
                format!("countries[{i}]"),
                "invalid_country",
                "an ISO 3166-1 alpha-2 code",
            ));
        }
        countries.push(c);
    }
    if countries.len() > 250 {
        errors.push(FieldError::new(
            "countries",
            "too_many",
            "at most 250 countries",
        ));
    }
    let currency = Currency::parse(&body.currency)
        .map_err(|e| {
            errors.push(FieldError::new(
                "currency",
                "invalid_currency",
                e.to_string(),
            ))
        })
        .ok();
    let amount_ok = |v: i64| (0..=MAX_TOTAL).contains(&v);
    if !amount_ok(body.amount) {
        errors.push(FieldError::new("amount", "out_of_range", "0 to 10^12"));
    }
    if !(0..=100_000_000).contains(&body.min_weight_grams) {
        errors.push(FieldError::new(
            "min_weight_grams",
            "out_of_range",
            "0 to 10^8",
        ));
    }
    if body
        .max_weight_grams
        .is_some_and(|m| m <= body.min_weight_grams || m > 100_000_000)
    {
        errors.push(FieldError::new(
            "max_weight_grams",
            "out_of_range",
            "above min_weight_grams, at most 10^8",
        ));
    }
    if body.free_over.is_some_and(|v| !amount_ok(v)) {
        errors.push(FieldError::new("free_over", "out_of_range", "0 to 10^12"));
    }
    match currency {
        Some(currency) if errors.is_empty() => Ok(ShippingRateRow {
            id,
            name,
            countries: countries.join(","),
            currency: currency.to_string(),
            amount: body.amount,
            min_weight_grams: body.min_weight_grams,
            max_weight_grams: body.max_weight_grams,
            free_over: body.free_over,
            active: i64::from(body.active.unwrap_or(true)),
            created_at,
            updated_at: now_micros(),
        }),
        _ => Err(ApiError::validation(errors)),
    }
}

/// Every shipping rate.
#[utoipa::path(
    get, path = "/api/v1/shipping-rates", tag = "rates",
    responses((status = 200, body = [ShippingRateView]))
)]
async fn list_shipping_rates(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<ShippingRateView>>, ApiError> {
    let rows =
        store::shipping_rates(&mut *state.checkout.db().pool().acquire().await?, None).await?;
    Ok(axum::Json(rows.into_iter().map(Into::into).collect()))
}

/// Add a shipping rate (staff).
#[utoipa::path(
    post, path = "/api/v1/shipping-rates", tag = "rates",
    request_body = ShippingRateRequest,
    responses((status = 201, body = ShippingRateView), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_shipping_rate(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Json(body): Json<ShippingRateRequest>,
) -> Result<(StatusCode, axum::Json<ShippingRateView>), ApiError> {
    let row = shipping_row(mercato_kernel::id::new_id("shr"), body, now_micros())?;
    store::upsert_shipping_rate(&mut *state.checkout.db().pool().acquire().await?, &row).await?;
    Ok((StatusCode::CREATED, axum::Json(row.into())))
}

/// Replace a shipping rate (staff); `active: false` retires it.
#[utoipa::path(
    put, path = "/api/v1/shipping-rates/{id}", tag = "rates",
    params(("id" = String, Path)),
    request_body = ShippingRateRequest,
    responses((status = 200, body = ShippingRateView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn replace_shipping_rate(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
    Json(body): Json<ShippingRateRequest>,
) -> Result<axum::Json<ShippingRateView>, ApiError> {
    mercato_kernel::id::parse_id("shr", &id, "id")?;
    let mut conn = state.checkout.db().pool().acquire().await?;
    let existing = store::find_shipping_rate(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("shipping rate"))?;
    let row = shipping_row(id, body, existing.created_at)?;
    store::upsert_shipping_rate(&mut conn, &row).await?;
    Ok(axum::Json(row.into()))
}

/// A tax rate for a country or one of its regions.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxRateRequest {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Region code; absent for the whole country.
    pub region: Option<String>,
    /// Shown to buyers, e.g. `VAT`, 1 to 50 characters.
    pub name: String,
    /// Basis points, 0 to 10 000 (1900 = 19 %).
    pub rate_bps: i64,
    /// Whether prices include it (default true, as in the EU).
    pub inclusive: Option<bool>,
    /// Whether shipping is taxed (default true).
    pub applies_to_shipping: Option<bool>,
}

/// A tax rate as stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaxRateView {
    /// `txr_…`.
    pub id: String,
    /// Country.
    pub country: String,
    /// Region, empty for the whole country.
    pub region: String,
    /// Name.
    pub name: String,
    /// Basis points.
    pub rate_bps: i64,
    /// Inside prices.
    pub inclusive: bool,
    /// Shipping taxed.
    pub applies_to_shipping: bool,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<TaxRateRow> for TaxRateView {
    fn from(r: TaxRateRow) -> Self {
        Self {
            id: r.id,
            country: r.country,
            region: r.region,
            name: r.name,
            rate_bps: r.rate_bps,
            inclusive: r.inclusive == 1,
            applies_to_shipping: r.applies_to_shipping == 1,
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// Every tax rate.
#[utoipa::path(
    get, path = "/api/v1/tax-rates", tag = "rates",
    responses((status = 200, body = [TaxRateView]))
)]
async fn list_tax_rates(
    State(state): State<AppState>,
) -> Result<axum::Json<Vec<TaxRateView>>, ApiError> {
    let rows = store::tax_rates(&mut *state.checkout.db().pool().acquire().await?, None).await?;
    Ok(axum::Json(rows.into_iter().map(Into::into).collect()))
}

/// Set the rate of a country or region (staff); replaces the one it has.
#[utoipa::path(
    put, path = "/api/v1/tax-rates", tag = "rates",
    request_body = TaxRateRequest,
    responses((status = 200, body = TaxRateView), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn put_tax_rate(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Json(body): Json<TaxRateRequest>,
) -> Result<axum::Json<TaxRateView>, ApiError> {
    let mut errors = Vec::new();
    let country = body.country.trim().to_ascii_uppercase();
    if !is_country(&country) {
        errors.push(FieldError::new(
            "country",
            "invalid_country",
            "an ISO 3166-1 alpha-2 code",
        ));
    }
    let region = body.region.as_deref().unwrap_or_default().trim().to_owned();
    if region.len() > 50 {
        errors.push(FieldError::new(
            "region",
            "invalid_length",
            "up to 50 characters",
        ));
    }
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 50 {
        errors.push(FieldError::new(
            "name",
            "invalid_length",
            "1 to 50 characters",
        ));
    }
    if !(0..=10_000).contains(&body.rate_bps) {
        errors.push(FieldError::new("rate_bps", "out_of_range", "0 to 10000"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut conn = state.checkout.db().pool().acquire().await?;
    let now = now_micros();
    let existing = store::find_tax_rate(&mut conn, &country, &region).await?;
    let row = TaxRateRow {
        id: existing
            .as_ref()
            .map_or_else(|| mercato_kernel::id::new_id("txr"), |e| e.id.clone()),
        name,
        country: country.clone(),
        region: region.clone(),
        rate_bps: body.rate_bps,
        inclusive: i64::from(body.inclusive.unwrap_or(true)),
        applies_to_shipping: i64::from(body.applies_to_shipping.unwrap_or(true)),
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
    };
    store::upsert_tax_rate(&mut conn, &row).await?;
    let stored = store::find_tax_rate(&mut conn, &country, &region)
        .await?
        .unwrap_or(row);
    Ok(axum::Json(stored.into()))
}

/// Remove a tax rate (staff).
#[utoipa::path(
    delete, path = "/api/v1/tax-rates/{id}", tag = "rates",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn delete_tax_rate(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    mercato_kernel::id::parse_id("txr", &id, "id")?;
    if store::delete_tax_rate(&mut *state.checkout.db().pool().acquire().await?, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("tax rate"))
    }
}
