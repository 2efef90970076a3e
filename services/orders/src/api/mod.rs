//! HTTP handlers of the orders service: carts (guests and customers), checkout, orders and
//! their lifecycle, and the shipping and tax rates staff configure.

mod carts;
mod orders;
mod rates;

use axum::Router;
use mercato_kernel::auth::{Claims, Role};
use mercato_kernel::idempotency::{self, Idempotency};
use mercato_kernel::openapi::BearerAuth;
use utoipa::OpenApi;

use crate::checkout::Checkout;

/// State every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// Pricing, placing orders and the saga.
    pub checkout: Checkout,
}

/// Every orders route; POSTs honour `Idempotency-Key` (checkout and refunds require one).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(carts::routes())
        .merge(orders::routes())
        .merge(rates::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            Idempotency::new(state.checkout.db().clone()),
            idempotency::layer,
        ))
        .with_state(state)
}

/// The service's OpenAPI document, assembled from each resource's.
pub struct ApiDoc;

impl ApiDoc {
    /// The merged document.
    pub fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = Base::openapi();
        doc.merge(carts::Doc::openapi());
        doc.merge(orders::Doc::openapi());
        doc.merge(rates::Doc::openapi());
        doc
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    components(schemas(mercato_kernel::error::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "carts", description = "Carts of guests and customers, priced live"),
        (name = "orders", description = "Checkout, orders, fulfillment, refunds and tracking"),
        (name = "rates", description = "Shipping and tax rates")
    )
)]
struct Base;

/// Whether the caller is staff.
fn is_staff(caller: Option<&Claims>) -> bool {
    caller.is_some_and(|c| c.has_role(Role::Staff))
}
