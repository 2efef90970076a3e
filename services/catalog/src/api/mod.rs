//! HTTP handlers of the catalog service.

mod categories;
mod prices;
mod product_input;
mod products;
mod promotions;
mod search;

use std::sync::Arc;

use axum::Router;
use mercato_kernel::Config;
use mercato_kernel::openapi::BearerAuth;
use mercato_store::Db;
use utoipa::OpenApi;

/// State every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The catalog database.
    pub db: Db,
    /// Platform configuration.
    pub config: Arc<Config>,
    /// The product search read model.
    pub search: Arc<crate::search::Search>,
}

/// Every catalog route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(products::routes())
        .merge(categories::routes())
        .merge(promotions::routes())
        .merge(prices::routes())
        .merge(search::routes())
        .with_state(state)
}

/// The service's OpenAPI document, assembled from each resource's.
pub struct ApiDoc;

impl ApiDoc {
    /// The merged document.
    pub fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = Base::openapi();
        doc.merge(products::Doc::openapi());
        doc.merge(categories::Doc::openapi());
        doc.merge(promotions::Doc::openapi());
        doc.merge(prices::Doc::openapi());
        doc.merge(search::Doc::openapi());
        doc
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    components(schemas(mercato_kernel::error::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "products", description = "Products and variants"),
        (name = "categories", description = "The category tree"),
        (name = "promotions", description = "Promotions and coupons"),
        (name = "prices", description = "Price quotes"),
        (name = "search", description = "Product search"),
    )
)]
struct Base;
