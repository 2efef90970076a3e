//! HTTP handlers of the notifications service.

mod callbacks;
mod inbox;
mod preferences;
mod send;
mod templates;
mod tracking;

pub use callbacks::{Callbacks, SENDGRID_EVENTS_PATH, TWILIO_STATUS_PATH};
pub use inbox::STAFF_INBOX;

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mercato_kernel::openapi::BearerAuth;
use mercato_store::Db;
use tokio::sync::broadcast;
use utoipa::OpenApi;

use crate::delivery::Sender;
use crate::links::Links;
use crate::providers::in_app::InboxEvent;

/// State every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The notifications database.
    pub db: Db,
    /// Wakes the sender when something is queued.
    pub sender: Sender,
    /// In-app deliveries, for the inbox streams.
    pub inbox: broadcast::Sender<InboxEvent>,
    /// Sends per second per API caller; `None`: unlimited.
    pub caller_limit: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    /// Signs and checks click and unsubscribe links.
    pub links: Links,
    /// Verifies providers' delivery reports.
    pub callbacks: Callbacks,
}

impl AppState {
    /// State with a per-caller send budget of `rate` per second (0: none).
    pub fn new(
        db: Db,
        sender: Sender,
        inbox: broadcast::Sender<InboxEvent>,
        links: Links,
        rate: u32,
    ) -> Self {
        Self {
            links,
            callbacks: Callbacks::default(),
            db,
            sender,
            inbox,
            caller_limit: NonZeroU32::new(rate)
                .map(|r| Arc::new(RateLimiter::keyed(Quota::per_second(r)))),
        }
    }

    /// The same state verifying providers' reports with `callbacks`.
    pub fn with_callbacks(mut self, callbacks: Callbacks) -> Self {
        self.callbacks = callbacks;
        self
    }
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(send::routes())
        .merge(templates::routes())
        .merge(preferences::routes())
        .merge(inbox::routes())
        .merge(tracking::routes())
        .merge(callbacks::routes())
        .with_state(state)
}

/// The service's OpenAPI document.
pub struct ApiDoc;

impl ApiDoc {
    /// The merged document.
    pub fn openapi() -> utoipa::openapi::OpenApi {
        let mut doc = Base::openapi();
        doc.merge(send::Doc::openapi());
        doc.merge(templates::Doc::openapi());
        doc.merge(preferences::Doc::openapi());
        doc.merge(inbox::Doc::openapi());
        doc.merge(tracking::Doc::openapi());
        doc.merge(callbacks::Doc::openapi());
        doc
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    components(schemas(mercato_kernel::error::Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "notifications", description = "Sending, delivery status, analytics"),
        (name = "templates", description = "Versioned templates per channel and locale"),
        (name = "preferences", description = "Per-user categories, channels and quiet hours"),
        (name = "inbox", description = "In-app notifications")
    )
)]
struct Base;
