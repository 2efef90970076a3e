//! HTTP handlers of the inventory service. Everything needs the staff role except the live
//! stock stream, which the storefront shows to shoppers.

mod reservations;
mod stock;
mod warehouses;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use mercato_kernel::idempotency::{self, Idempotency};
use mercato_kernel::openapi::BearerAuth;
use mercato_kernel::{ApiError, Config, FieldError};
use utoipa::OpenApi;

use crate::feed::Feed;
use crate::ledger::{Ledger, LedgerError};

/// State every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// Stock-changing operations over the inventory database.
    pub ledger: Ledger,
    /// Live stock changes.
    pub feed: Arc<Feed>,
    /// Platform configuration.
    pub config: Arc<Config>,
}

/// Every inventory route. Creating requests honour `Idempotency-Key`.
pub fn router(state: AppState) -> Router {
    let idempotent = Router::new()
        .merge(warehouses::routes())
        .merge(stock::routes())
        .merge(reservations::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            Idempotency::new(state.ledger.db().clone()),
            idempotency::layer,
        ));
    idempotent.with_state(state)
}

/// The service's OpenAPI document, assembled from each resource's.
pub struct ApiDoc;

impl ApiDoc {
    /// The merged document.
    pub fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = Base::openapi();
        doc.merge(warehouses::Doc::openapi());
        doc.merge(stock::Doc::openapi());
        doc.merge(reservations::Doc::openapi());
        doc
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    components(schemas(mercato_kernel::error::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "warehouses", description = "Where stock is kept"),
        (name = "stock", description = "Stock levels, adjustments, the ledger and alerts"),
        (name = "reservations", description = "Holding stock for orders"),
    )
)]
struct Base;

impl From<LedgerError> for ApiError {
    fn from(err: LedgerError) -> Self {
        match err {
            LedgerError::UnknownSku(skus) => {
                let errors = skus
                    .iter()
                    .map(|sku| {
                        FieldError::new("sku", "unknown_sku", format!("unknown SKU `{sku}`"))
                    })
                    .collect();
                ApiError::validation(errors)
            }
            LedgerError::UnknownWarehouse => {
                ApiError::invalid_field("warehouse_id", "unknown_warehouse", "no such warehouse")
            }
            LedgerError::Insufficient(short) => {
                let names: Vec<&str> = short.iter().map(|s| s.sku.as_str()).collect();
                ApiError::conflict(
                    "insufficient_stock",
                    format!(
                        "not enough stock for {}; nothing was reserved",
                        names.join(", ")
                    ),
                )
                .with_extension("shortages", &short)
            }
            LedgerError::BelowReserved { reserved } => ApiError::conflict(
                "stock_reserved",
                format!("on hand cannot fall below 0 or the {reserved} units reserved here"),
            ),
            LedgerError::ReservationNotFound => ApiError::not_found("reservation"),
            LedgerError::ReservationClosed(status) => ApiError::new(
                StatusCode::CONFLICT,
                format!("reservation_{}", status.as_str()),
                format!("the reservation is already {}", status.as_str()),
            ),
            LedgerError::Db(e) => e.into(),
            LedgerError::Store(e) => e.into(),
            LedgerError::Bus(e) => ApiError::internal(e),
        }
    }
}

/// Checks a SKU taken from a path, query or body.
fn check_sku(field: &str, sku: &str) -> Result<(), FieldError> {
    if mercato_contracts::sku::is_valid(sku) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "invalid_sku",
            mercato_contracts::sku::RULE,
        ))
    }
}

/// Parses `?skus=a,b,c`: 1 to [`crate::domain::MAX_SKUS_PER_QUERY`] distinct valid SKUs.
fn parse_sku_list(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let raw = raw.unwrap_or_default();
    let mut skus: Vec<String> = Vec::new();
    for sku in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        check_sku("skus", sku).map_err(|e| ApiError::validation(vec![e]))?;
        if !skus.iter().any(|s| s == sku) {
            skus.push(sku.to_owned());
        }
    }
    if skus.is_empty() || skus.len() > crate::domain::MAX_SKUS_PER_QUERY {
        return Err(ApiError::invalid_field(
            "skus",
            "out_of_range",
            format!(
                "name 1 to {} SKUs, comma-separated",
                crate::domain::MAX_SKUS_PER_QUERY
            ),
        ));
    }
    Ok(skus)
}
