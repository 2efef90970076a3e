//! Layered configuration: defaults, then `mercato.toml`, then environment variables.
//!
//! Keys are the environment variable names of DESIGN.md §6 in lower case, so
//! `API_GATEWAY_PORT=8080` and `api_gateway_port = 8080` in `mercato.toml` mean the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mercato_store::PoolSettings;
use serde::Deserialize;

use crate::service::ServiceInfo;

/// Failure to read or parse the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON on a non-terminal, pretty on a terminal.
    #[default]
    Auto,
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Every source value, for the per-service variables; not printed, since any value may be a
/// secret.
#[derive(Clone)]
struct Raw(config::Config);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Raw(..)")
    }
}

/// A configuration value that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One entry of the gateway's route table (`[[gateway_routes]]` in `mercato.toml`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayRoute {
    /// Path prefix it matches, at a segment boundary (`/api/v1/shop` matches `/api/v1/shop/x`,
    /// not `/api/v1/shopping`).
    pub prefix: String,
    /// Service the requests go to (`catalog`, `orders`, …).
    pub service: String,
    /// Methods it matches (`GET`, `POST`, …); empty: every method.
    pub methods: Vec<String>,
    /// What replaces `prefix` in the forwarded path; unset: the path is forwarded unchanged.
    pub rewrite: Option<String>,
    /// Who may pass the edge: `public` (default: the service decides), `user` (a valid access
    /// token or API key), `staff` or `admin` (that role).
    pub auth: Option<String>,
}

/// Platform configuration; every field has a default so `mercato up` needs none.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Gateway port (`API_GATEWAY_PORT`).
    pub api_gateway_port: u16,
    /// Where embedded databases and the event log live (`MERCATO_DATA_DIR`).
    pub mercato_data_dir: PathBuf,
    /// Shared database URL, split per service (`DATABASE_URL`).
    pub database_url: Option<String>,
    /// Pool size per service (`DB_CONNECTION_LIMIT`).
    pub db_connection_limit: u32,
    /// Wait for a pooled connection (`DB_POOL_TIMEOUT_SECONDS`).
    pub db_pool_timeout_seconds: u64,
    /// Wait for a new connection (`DB_CONNECT_TIMEOUT_SECONDS`).
    pub db_connect_timeout_seconds: u64,
    /// NATS server; the embedded event log when unset (`NATS_URL`).
    pub nats_url: Option<String>,
    /// JetStream stream holding the platform's events (`NATS_STREAM`); deployments sharing
    /// a NATS server use different streams and subject prefixes.
    pub nats_stream: String,
    /// Prefix of every subject on the wire (`NATS_SUBJECT_PREFIX`).
    pub nats_subject_prefix: String,
    /// `auto`, `pretty` or `json` (`LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Largest accepted request body in bytes (`MERCATO_BODY_LIMIT_BYTES`).
    pub mercato_body_limit_bytes: usize,
    /// How long shutdown waits for in-flight requests (`MERCATO_SHUTDOWN_GRACE_SECONDS`).
    pub mercato_shutdown_grace_seconds: u64,
    /// JWKS document to verify access tokens with, as a URL (`MERCATO_JWKS_URL`).
    pub mercato_jwks_url: Option<String>,
    /// JWKS document as a file (`MERCATO_JWKS_FILE`).
    pub mercato_jwks_file: Option<PathBuf>,
    /// Expected `iss` claim (`MERCATO_JWT_ISSUER`).
    pub mercato_jwt_issuer: Option<String>,
    /// Shared secret (at least 32 bytes) signing the tokens services send each other
    /// (`MERCATO_SERVICE_SECRET`); `mercato up` makes one per process when unset.
    pub mercato_service_secret: Option<Secret>,
    /// Email of the admin identity creates at start when no admin exists
    /// (`MERCATO_BOOTSTRAP_ADMIN_EMAIL`).
    pub mercato_bootstrap_admin_email: Option<String>,
    /// Password of that admin (`MERCATO_BOOTSTRAP_ADMIN_PASSWORD`); there is no default.
    pub mercato_bootstrap_admin_password: Option<Secret>,
    /// Gateway upstream timeout (`GATEWAY_REQUEST_TIMEOUT_MS`).
    pub gateway_request_timeout_ms: u64,
    /// Gateway response cache TTL (`GATEWAY_CACHE_TTL_MS`).
    pub gateway_cache_ttl_ms: u64,
    /// Gateway response cache size (`GATEWAY_CACHE_MAX_ENTRIES`).
    pub gateway_cache_max_entries: u64,
    /// Route groups whose public GET answers the gateway caches (`GATEWAY_CACHE_ROUTES`,
    /// comma-separated first segments after `/api/v1/`).
    pub gateway_cache_routes: String,
    /// Most upstream connections (`GATEWAY_MAX_SOCKETS`).
    pub gateway_max_sockets: usize,
    /// How the gateway picks a replica (`GATEWAY_LB_STRATEGY`): `round_robin`,
    /// `least_outstanding` or `p2c` (power of two choices).
    pub gateway_lb_strategy: String,
    /// Failures in a row (5xx, no connection) that eject a replica (`GATEWAY_EJECT_AFTER`).
    pub gateway_eject_after: u32,
    /// How long an ejected replica is left out before it is tried again (`GATEWAY_EJECT_MS`).
    pub gateway_eject_ms: u64,
    /// How often the gateway asks each replica's `/health` (`GATEWAY_HEALTH_INTERVAL_MS`,
    /// 0: never).
    pub gateway_health_interval_ms: u64,
    /// Failed requests in a row that open an upstream's circuit (`GATEWAY_BREAKER_FAILURES`,
    /// 0: never).
    pub gateway_breaker_failures: u32,
    /// How long an open circuit answers 503 before a probe (`GATEWAY_BREAKER_COOLDOWN_MS`).
    pub gateway_breaker_cooldown_ms: u64,
    /// Most idle upstream connections kept per host (`GATEWAY_MAX_FREE_SOCKETS`).
    pub gateway_max_free_sockets: usize,
    /// Idle upstream connection lifetime (`GATEWAY_KEEP_ALIVE_MS`).
    pub gateway_keep_alive_ms: u64,
    /// Requests slower than this are logged (`GATEWAY_SLOW_REQUEST_THRESHOLD_MS`).
    pub gateway_slow_request_threshold_ms: u64,
    /// Requests per second one client may make to the API (`GATEWAY_RATE_LIMIT_RPS`); 0 turns
    /// rate limiting off.
    pub gateway_rate_limit_rps: u32,
    /// Requests one client may make at once above the rate (`GATEWAY_RATE_LIMIT_BURST`).
    pub gateway_rate_limit_burst: u32,
    /// Budgets of route groups, `group=rate/burst` separated by `;` (`GATEWAY_RATE_LIMITS`),
    /// e.g. `auth=5/20`; the group is the first segment after `/api/v1/`.
    pub gateway_rate_limits: String,
    /// Origins browsers may call the API from, comma-separated, or `*` (`GATEWAY_CORS_ORIGINS`);
    /// empty: no cross-origin access.
    pub gateway_cors_origins: String,
    /// Redirect target for `/assets/*` (`CDN_BASE_URL`).
    pub cdn_base_url: Option<String>,
    /// Routes of the gateway besides the built-in ones, from `[[gateway_routes]]` tables of
    /// `mercato.toml`; the longest matching prefix wins, then the built-in routes apply.
    pub gateway_routes: Vec<GatewayRoute>,
    /// Directory whose templates replace the storefront's and admin's shipped ones
    /// (`MERCATO_THEME_DIR`, or `--theme`).
    pub mercato_theme_dir: Option<PathBuf>,
    /// Redis shared by the gateway replicas for rate limits (`REDIS_URL`); unset: each
    /// gateway keeps its limits in memory.
    pub redis_url: Option<String>,
    /// Available units at or below which a SKU without its own threshold is low on stock
    /// (`INVENTORY_LOW_STOCK_THRESHOLD`).
    pub inventory_low_stock_threshold: i64,
    /// Lifetime of a reservation that does not name one (`INVENTORY_RESERVATION_TTL_SECONDS`).
    pub inventory_reservation_ttl_seconds: i64,
    /// How often expired reservations are looked for (`INVENTORY_SWEEP_INTERVAL_MS`).
    pub inventory_sweep_interval_ms: u64,
    /// Longest wait for another service's answer (`MERCATO_SERVICE_TIMEOUT_MS`).
    pub mercato_service_timeout_ms: u64,
    /// How long orders holds stock for a checkout being paid (`ORDERS_RESERVATION_TTL_SECONDS`).
    pub orders_reservation_ttl_seconds: i64,
    /// Tries of a checkout step that failed for a passing reason (a service down, a provider
    /// timing out) before the order is cancelled (`ORDERS_SAGA_MAX_ATTEMPTS`).
    pub orders_saga_max_attempts: u32,
    /// First pause between two tries of a step, doubled each time (`ORDERS_SAGA_RETRY_MS`).
    pub orders_saga_retry_ms: u64,
    /// How often unfinished checkouts are looked for and resumed (`ORDERS_RESUME_INTERVAL_MS`).
    pub orders_resume_interval_ms: u64,
    /// Test hook: the process aborts right after persisting this checkout step
    /// (`ORDERS_SAGA_CRASH_AFTER`: `created`, `reserved`, `payment_created`, `charged`).
    pub orders_saga_crash_after: Option<String>,
    /// SMTP server of emails (`SMTP_URL`): `smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`, or `smtp://host:25` without TLS. Unset: the local mailbox.
    pub smtp_url: Option<String>,
    /// Sender of emails (`SMTP_FROM`), `Name <address>`.
    pub smtp_from: String,
    /// SendGrid API key (`SENDGRID_API_KEY`): a second email provider after SMTP.
    pub sendgrid_api_key: Option<Secret>,
    /// SendGrid's Event Webhook verification key, base64 DER (`SENDGRID_WEBHOOK_PUBLIC_KEY`);
    /// without it SendGrid's delivery events are refused.
    pub sendgrid_webhook_public_key: Option<String>,
    /// SendGrid API base (`SENDGRID_API_BASE`).
    pub sendgrid_api_base: String,
    /// Twilio account (`TWILIO_ACCOUNT_SID`).
    pub twilio_account_sid: Option<String>,
    /// Twilio auth token (`TWILIO_AUTH_TOKEN`).
    pub twilio_auth_token: Option<Secret>,
    /// Sender number or messaging service of SMS (`TWILIO_FROM`).
    pub twilio_from: Option<String>,
    /// Twilio API base (`TWILIO_API_BASE`).
    pub twilio_api_base: String,
    /// Vonage API key (`VONAGE_API_KEY`): a second SMS provider after Twilio.
    pub vonage_api_key: Option<String>,
    /// Vonage API secret (`VONAGE_API_SECRET`).
    pub vonage_api_secret: Option<Secret>,
    /// Vonage sender (`VONAGE_FROM`).
    pub vonage_from: Option<String>,
    /// Vonage API base (`VONAGE_API_BASE`).
    pub vonage_api_base: String,
    /// Firebase service-account JSON file of push (`FCM_SERVICE_ACCOUNT_FILE`).
    pub fcm_service_account_file: Option<PathBuf>,
    /// FCM API base (`FCM_API_BASE`).
    pub fcm_api_base: String,
    /// Public base URL of the platform (`MERCATO_PUBLIC_URL`), for links in messages.
    pub mercato_public_url: String,
    /// APNs token key, the `.p8` file (`APNS_KEY_FILE`).
    pub apns_key_file: Option<PathBuf>,
    /// Its key id (`APNS_KEY_ID`).
    pub apns_key_id: Option<String>,
    /// The Apple developer team (`APNS_TEAM_ID`).
    pub apns_team_id: Option<String>,
    /// The app's bundle id, the `apns-topic` (`APNS_TOPIC`).
    pub apns_topic: Option<String>,
    /// APNs base (`APNS_API_BASE`; `https://api.sandbox.push.apple.com` for development).
    pub apns_api_base: String,
    /// Key signing outbound webhook notifications (`NOTIFICATIONS_WEBHOOK_SECRET`).
    pub notifications_webhook_secret: Option<Secret>,
    /// First retry pause of a failed send (`NOTIFICATIONS_RETRY_MS`), doubled per attempt.
    pub notifications_retry_ms: u64,
    /// Attempts before a send fails (`NOTIFICATIONS_MAX_ATTEMPTS`).
    pub notifications_max_attempts: u32,
    /// How often the queue is polled when nothing wakes the sender (`NOTIFICATIONS_POLL_MS`).
    pub notifications_poll_ms: u64,
    /// Sends per second per user and channel (`NOTIFICATIONS_USER_RATE_PER_SECOND`, 0: none).
    pub notifications_user_rate_per_second: u32,
    /// Sends per second per provider (`NOTIFICATIONS_PROVIDER_RATE_PER_SECOND`, 0: none).
    pub notifications_provider_rate_per_second: u32,
    /// Sends per second per API caller (`NOTIFICATIONS_API_RATE_PER_SECOND`, 0: none).
    pub notifications_api_rate_per_second: u32,
    /// Timeout of one provider call (`NOTIFICATIONS_PROVIDER_TIMEOUT_MS`).
    pub notifications_provider_timeout_ms: u64,
    /// Provider of payments that name none (`PAYMENTS_DEFAULT_PROVIDER`): `test` or `stripe`.
    pub payments_default_provider: String,
    /// Timeout of one call to a payment provider (`PAYMENTS_PROVIDER_TIMEOUT_MS`).
    pub payments_provider_timeout_ms: u64,
    /// Stripe secret key (`STRIPE_SECRET_KEY`); Stripe is offered only when it is set.
    pub stripe_secret_key: Option<Secret>,
    /// Stripe API base URL (`STRIPE_API_BASE`).
    pub stripe_api_base: String,
    /// Secret that signs Stripe webhooks (`STRIPE_WEBHOOK_SECRET`).
    pub stripe_webhook_secret: Option<Secret>,
    /// PayPal REST credentials (`PAYPAL_CLIENT_ID`, `PAYPAL_CLIENT_SECRET`); PayPal is offered
    /// only when both are set.
    pub paypal_client_id: Option<String>,
    /// See `paypal_client_id`.
    pub paypal_client_secret: Option<Secret>,
    /// PayPal API base URL (`PAYPAL_API_BASE`).
    pub paypal_api_base: String,
    /// Id of the PayPal webhook whose deliveries are accepted (`PAYPAL_WEBHOOK_ID`).
    pub paypal_webhook_id: Option<String>,
    /// Braintree API keys (`BRAINTREE_PUBLIC_KEY`, `BRAINTREE_PRIVATE_KEY`); Braintree is
    /// offered only when both are set.
    pub braintree_public_key: Option<String>,
    /// See `braintree_public_key`.
    pub braintree_private_key: Option<Secret>,
    /// Braintree merchant account (`BRAINTREE_MERCHANT_ACCOUNT_ID`).
    pub braintree_merchant_account_id: Option<String>,
    /// Braintree GraphQL base URL (`BRAINTREE_API_BASE`).
    pub braintree_api_base: String,
    /// Which providers serve which payments, tried in order (`PAYMENTS_ROUTES`), e.g.
    /// `JPY:paypal,stripe; amount>=100000:braintree,stripe; *:stripe,paypal`. Empty: the
    /// default provider only.
    pub payments_routes: String,
    /// Consecutive failures that open a provider's circuit (`PAYMENTS_BREAKER_FAILURES`).
    pub payments_breaker_failures: u32,
    /// How long an open circuit stays open before one trial call (`PAYMENTS_BREAKER_COOLDOWN_MS`).
    pub payments_breaker_cooldown_ms: u64,
    /// Risk score from which a payment waits for a staff review
    /// (`PAYMENTS_RISK_REVIEW_THRESHOLD`).
    pub payments_risk_review_threshold: i64,
    /// Risk score from which a payment is refused (`PAYMENTS_RISK_BLOCK_THRESHOLD`).
    pub payments_risk_block_threshold: i64,
    /// Key of the card fingerprints (`PAYMENTS_FINGERPRINT_KEY`); without it the service makes
    /// one and keeps it in its database.
    pub payments_fingerprint_key: Option<Secret>,
    #[serde(skip)]
    raw: Option<Raw>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_gateway_port: 3000,
            mercato_data_dir: PathBuf::from("./data"),
            database_url: None,
            db_connection_limit: 20,
            db_pool_timeout_seconds: 15,
            db_connect_timeout_seconds: 10,
            nats_url: None,
            nats_stream: "MERCATO".to_owned(),
            nats_subject_prefix: "mercato".to_owned(),
            log_format: LogFormat::Auto,
            mercato_body_limit_bytes: 1024 * 1024,
            mercato_shutdown_grace_seconds: 30,
            mercato_jwks_url: None,
            mercato_jwks_file: None,
            mercato_jwt_issuer: None,
            mercato_service_secret: None,
            mercato_bootstrap_admin_email: None,
            mercato_bootstrap_admin_password: None,
            gateway_request_timeout_ms: 4000,
            gateway_cache_ttl_ms: 10_000,
            gateway_cache_max_entries: 1000,
            gateway_cache_routes: "products,categories,search".to_owned(),
            gateway_max_sockets: 2048,
            gateway_lb_strategy: "p2c".to_owned(),
            gateway_eject_after: 3,
            gateway_eject_ms: 10_000,
            gateway_health_interval_ms: 5_000,
            gateway_breaker_failures: 5,
            gateway_breaker_cooldown_ms: 5_000,
            gateway_max_free_sockets: 256,
            gateway_keep_alive_ms: 5000,
            gateway_slow_request_threshold_ms: 500,
            gateway_rate_limit_rps: 100,
            gateway_rate_limit_burst: 200,
            gateway_rate_limits: "auth=5/20".to_owned(),
            gateway_cors_origins: String::new(),
            cdn_base_url: None,
            gateway_routes: Vec::new(),
            redis_url: None,
            mercato_theme_dir: None,
            inventory_low_stock_threshold: 5,
            inventory_reservation_ttl_seconds: 900,
            inventory_sweep_interval_ms: 1000,
            mercato_service_timeout_ms: 30_000,
            orders_reservation_ttl_seconds: 900,
            orders_saga_max_attempts: 5,
            orders_saga_retry_ms: 200,
            orders_resume_interval_ms: 2_000,
            orders_saga_crash_after: None,
            smtp_url: None,
            smtp_from: "Mercato <no-reply@mercato.local>".to_owned(),
            sendgrid_api_key: None,
            sendgrid_webhook_public_key: None,
            sendgrid_api_base: "https://api.sendgrid.com".to_owned(),
            twilio_account_sid: None,
            twilio_auth_token: None,
            twilio_from: None,
            twilio_api_base: "https://api.twilio.com".to_owned(),
            vonage_api_key: None,
            vonage_api_secret: None,
            vonage_from: None,
            vonage_api_base: "https://rest.nexmo.com".to_owned(),
            fcm_service_account_file: None,
            fcm_api_base: "https://fcm.googleapis.com".to_owned(),
            mercato_public_url: "http://127.0.0.1:3000".to_owned(),
            apns_key_file: None,
            apns_key_id: None,
            apns_team_id: None,
            apns_topic: None,
            apns_api_base: "https://api.push.apple.com".to_owned(),
            notifications_webhook_secret: None,
            notifications_retry_ms: 1_000,
            notifications_max_attempts: 8,
            notifications_poll_ms: 500,
            notifications_user_rate_per_second: 10,
            notifications_provider_rate_per_second: 0,
            notifications_api_rate_per_second: 100,
            notifications_provider_timeout_ms: 10_000,
            payments_default_provider: "test".to_owned(),
            payments_provider_timeout_ms: 10_000,
            stripe_secret_key: None,
            stripe_api_base: "https://api.stripe.com".to_owned(),
            stripe_webhook_secret: None,
            paypal_client_id: None,
            paypal_client_secret: None,
            paypal_api_base: "https://api-m.paypal.com".to_owned(),
            paypal_webhook_id: None,
            braintree_public_key: None,
            braintree_private_key: None,
            braintree_merchant_account_id: None,
            braintree_api_base: "https://payments.braintree-api.com".to_owned(),
            payments_routes: String::new(),
            payments_breaker_failures: 5,
            payments_breaker_cooldown_ms: 30_000,
            payments_risk_review_threshold: 50,
            payments_risk_block_threshold: 80,
            payments_fingerprint_key: None,
            raw: None,
        }
    }
}

impl Config {
    /// Reads `mercato.toml` (or the file `MERCATO_CONFIG` names) and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("MERCATO_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("mercato.toml"));
        Self::from_sources(Some(&file), std::env::vars())
    }

    /// Builds the configuration from an optional TOML file and a set of variables.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(
                config::File::from(file.to_path_buf())
                    .format(config::FileFormat::Toml)
                    .required(false),
            );
        }
        // Empty variables count as unset, as in most shells' `VAR= cmd` habit.
        let env = env
            .into_iter()
            .filter(|(k, v)| !v.is_empty() && !k.is_empty())
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        builder = builder.add_source(config::Environment::default().source(Some(env)));
        let raw = builder.build()?;
        let mut cfg: Config = raw.clone().try_deserialize()?;
        cfg.raw = Some(Raw(raw));
        Ok(cfg)
    }

    fn lookup(&self, key: &str) -> Option<String> {
        let raw = self.raw.as_ref()?;
        raw.0
            .get_string(&key.to_ascii_lowercase())
            .ok()
            .filter(|v| !v.is_empty())
    }

    fn per_service(&self, info: &ServiceInfo, suffix: &str) -> Option<String> {
        self.lookup(&format!("{}_{suffix}", info.name))
            .or_else(|| self.lookup(&format!("{}_{suffix}", info.env_stem)))
    }

    /// The port a service listens on when served alone.
    pub fn port_of(&self, info: &ServiceInfo) -> u16 {
        if info.name == "gateway" {
            return self.api_gateway_port;
        }
        self.lookup(info.port_var)
            .and_then(|p| p.parse().ok())
            .unwrap_or(info.default_port)
    }

    /// The database URL of a service (`<NAME>_DATABASE_URL`, else `DATABASE_URL` split per
    /// service, else a SQLite file in the data dir).
    pub fn database_url_for(&self, info: &ServiceInfo) -> String {
        let specific = self.per_service(info, "database_url");
        mercato_store::service_database_url(
            info.name,
            specific.as_deref(),
            self.database_url.as_deref(),
            &self.mercato_data_dir,
        )
    }

    /// Where the gateway reaches a service in distributed mode (`<NAME>_SERVICE_URL`); a
    /// comma-separated value lists several replicas.
    pub fn service_urls(&self, info: &ServiceInfo) -> Vec<String> {
        self.per_service(info, "service_url")
            .map(|v| {
                v.split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Pool settings from the `DB_*` variables.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.db_connection_limit.max(1),
            acquire_timeout: Duration::from_secs(self.db_pool_timeout_seconds),
            connect_timeout: Duration::from_secs(self.db_connect_timeout_seconds),
        }
    }

    /// Upstream timeout of the gateway.
    pub fn gateway_request_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway_request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let cfg = Config::from_sources(None, env(&[])).unwrap();
        assert_eq!(cfg.api_gateway_port, 3000);
        assert_eq!(cfg.mercato_body_limit_bytes, 1 << 20);
        assert_eq!(cfg.gateway_request_timeout_ms, 4000);
        let orders = ServiceInfo::find("orders").unwrap();
        assert_eq!(cfg.port_of(orders), 3011);
        assert_eq!(cfg.database_url_for(orders), "sqlite://./data/orders.db");
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mercato.toml");
        std::fs::write(&file, "api_gateway_port = 4000\ngateway_cache_ttl_ms = 5\n").unwrap();
        let cfg = Config::from_sources(Some(&file), env(&[("API_GATEWAY_PORT", "4100")])).unwrap();
        assert_eq!(cfg.api_gateway_port, 4100);
        assert_eq!(cfg.gateway_cache_ttl_ms, 5);
    }

    #[test]
    fn the_gateway_route_table_comes_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mercato.toml");
        std::fs::write(
            &file,
            "[[gateway_routes]]\nprefix = \"/api/v1/shop\"\nservice = \"catalog\"\n\
             methods = [\"GET\"]\nrewrite = \"/api/v1/products\"\n\n\
             [[gateway_routes]]\nprefix = \"/api/v1/orders\"\nservice = \"orders\"\nauth = \"user\"\n",
        )
        .unwrap();
        let cfg =
            Config::from_sources(Some(&file), env(&[("REDIS_URL", "redis://r:6379")])).unwrap();
        assert_eq!(cfg.gateway_routes.len(), 2);
        assert_eq!(cfg.gateway_routes[0].methods, ["GET"]);
        assert_eq!(
            cfg.gateway_routes[0].rewrite.as_deref(),
            Some("/api/v1/products")
        );
        assert_eq!(cfg.gateway_routes[1].auth.as_deref(), Some("user"));
        assert_eq!(cfg.redis_url.as_deref(), Some("redis://r:6379"));
    }

    #[test]
    fn per_service_variables_accept_the_name_or_the_original_stem() {
        let cfg = Config::from_sources(
            None,
            env(&[
                ("USER_SERVICE_URL", "http://a:1, http://b:2"),
                ("ORDERS_DATABASE_URL", "postgres://h/o"),
                ("ORDER_SERVICE_PORT", "9011"),
            ]),
        )
        .unwrap();
        let identity = ServiceInfo::find("identity").unwrap();
        let orders = ServiceInfo::find("orders").unwrap();
        assert_eq!(cfg.service_urls(identity), ["http://a:1", "http://b:2"]);
        assert_eq!(cfg.database_url_for(orders), "postgres://h/o");
        assert_eq!(cfg.port_of(orders), 9011);
    }

    #[test]
    fn shared_database_url_is_split_per_service() {
        let cfg =
            Config::from_sources(None, env(&[("DATABASE_URL", "postgres://p@h/shop")])).unwrap();
        let catalog = ServiceInfo::find("catalog").unwrap();
        assert_eq!(cfg.database_url_for(catalog), "postgres://p@h/shop_catalog");
    }

    #[test]
    fn secrets_never_print() {
        let cfg = Config::from_sources(
            None,
            env(&[("MERCATO_BOOTSTRAP_ADMIN_PASSWORD", "hunter2-but-longer")]),
        )
        .unwrap();
        let password = cfg.mercato_bootstrap_admin_password.as_ref().unwrap();
        assert_eq!(password.expose(), "hunter2-but-longer");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn malformed_numbers_are_reported() {
        let err = Config::from_sources(None, env(&[("API_GATEWAY_PORT", "lots")])).unwrap_err();
        assert!(err.to_string().contains("api_gateway_port"), "{err}");
    }
}
