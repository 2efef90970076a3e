//! The kernel every Mercato service is built on: configuration, errors, auth, ids, money,
//! pagination, telemetry, health, idempotency and the HTTP server bootstrap.

pub mod address;
pub mod auth;
pub mod client;
pub mod config;
pub mod email;
pub mod error;
pub mod health;
pub mod http;
pub mod id;
pub mod idempotency;
pub mod money;
pub mod openapi;
pub mod pagination;
pub mod server;
pub mod service;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use config::{Config, GatewayRoute};
pub use error::{ApiError, FieldError, Json, Path, Query};
pub use service::{CATALOG, Context, Service, ServiceInfo};
