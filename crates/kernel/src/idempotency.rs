//! `Idempotency-Key` for requests that create things or move money (DESIGN.md §3).
//!
//! A service adds the middleware to the routes that need it and migrates its table into the
//! service database (`service::migrate` does the latter):
//!
//! ```ignore
//! let api = Router::new()
//!     .route("/api/v1/checkout", post(checkout))
//!     .route_layer(axum::middleware::from_fn_with_state(
//!         Idempotency::new(db.clone()),
//!         idempotency::layer,
//!     ));
//! ```
//!
//! Only `POST`, `PUT`, `PATCH` and `DELETE` requests carrying the header are affected. A key
//! is scoped to the caller (the `sub` of a valid bearer token, else a hash of the
//! `Authorization` header, else anonymous), the method and the path. The first request runs
//! and its response is stored unless it is a 5xx or 429 (those may be retried); a retry with
//! the same key and the same method, path, query and body gets the stored response again,
//! byte for byte, with `Idempotent-Replayed: true`. The same key with another request is 422
//! `idempotency_key_reused`; while the first still runs, 409
//! `idempotency_request_in_progress`. The handler runs in its own task, so a client that
//! hangs up does not cancel it half way: its response is stored for the retry. Keys expire
//! after 24 hours.

mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use mercato_store::{Db, Migrator, StoreError, now_micros};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::auth::{Authenticator, bearer_token};
use crate::error::ApiError;
use store::{COMPLETED, Row, Slot};

/// The request header carrying the key.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header marking a replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Longest accepted key, in characters (visible ASCII only).
pub const MAX_KEY_LENGTH: usize = 255;
/// How long a key is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a request may hold its key before a retry may take the key over.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);
/// Largest request body fingerprinted by default.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Response headers stored and replayed beside the status and body.
const STORED_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];
/// One request in this many purges expired keys.
const PURGE_EVERY: u64 = 100;

static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_kernel_migrations");
    migrator
});

/// The kernel's migrations, tracked in `_kernel_migrations` beside the service's own.
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}

/// Creates the `idempotency_keys` table in a service database.
pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    db.migrate(migrator()).await
}

/// Deletes keys older than [`DEFAULT_TTL`]; returns how many.
pub async fn purge_expired(db: &Db) -> Result<u64, StoreError> {
    Ok(store::purge(db, cutoff(now_micros(), DEFAULT_TTL)).await?)
}

/// State of the [`layer`] middleware: the service database and the limits.
#[derive(Debug, Clone)]
pub struct Idempotency {
    db: Db,
    body_limit: usize,
    ttl: Duration,
    stale_after: Duration,
    requests: Arc<AtomicU64>,
}

impl Idempotency {
    /// Middleware state over the service database, with the default limits.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            body_limit: DEFAULT_BODY_LIMIT,
            ttl: DEFAULT_TTL,
            stale_after: DEFAULT_STALE_AFTER,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the largest request body accepted with a key (larger ones get 413).
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets how long keys are remembered.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets how long a running request holds its key before a retry may take it over.
    pub fn with_stale_after(mut self, after: Duration) -> Self {
        self.stale_after = after;
        self
    }

    async fn release(&self, slot: &Slot) {
        if let Err(e) = store::release(&self.db, slot).await {
            tracing::warn!(error = %e, "releasing an idempotency key failed");
        }
    }

    fn maybe_purge(&self) {
        if self.requests.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY != PURGE_EVERY - 1 {
            return;
        }
        let (db, cutoff) = (self.db.clone(), cutoff(now_micros(), self.ttl));
        tokio::spawn(async move {
            match store::purge(&db, cutoff).await {
                Ok(n) => tracing::debug!(purged = n, "purged expired idempotency keys"),
                Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
            }
        });
    }
}

/// The middleware, for `axum::middleware::from_fn_with_state(Idempotency::new(db), layer)`.
pub async fn layer(State(idem): State<Idempotency>, req: Request, next: Next) -> Response {
    let wanted = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !wanted || !req.headers().contains_key(IDEMPOTENCY_KEY) {
        return next.run(req).await;
    }
    handle(idem, req, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle(idem: Idempotency, req: Request, next: Next) -> Result<Response, ApiError> {
    let key = parse_key(req.headers())?;
    let (parts, body) = req.into_parts();
    let body = read_body(&parts, body, idem.body_limit).await?;
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let principal = principal(&parts).await;
    let method = parts.method.as_str().as_bytes();
    let scope = digest(&[principal.as_bytes(), method, uri.path().as_bytes()]);
    let fingerprint = digest(&[method, path_and_query.as_bytes(), &body]);
    idem.maybe_purge();

    let slot = match claim(&idem, scope, key, &fingerprint).await? {
        Claimed::Owner(slot) => slot,
        Claimed::Replay(response) => return Ok(response),
    };
    let req = Request::from_parts(parts, Body::from(body));
    let task = tokio::spawn(run_and_record(idem, slot, next, req).in_current_span());
    task.await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("idempotent request failed: {e}")))
}

/// What the first look at a key decided.
enum Claimed {
    /// This request owns the key and runs.
    Owner(Slot),
    /// The key holds a completed response for this same request.
    Replay(Response),
}

async fn claim(
    idem: &Idempotency,
    scope: String,
    key: String,
    fingerprint: &str,
) -> Result<Claimed, ApiError> {
    let slot = Slot {
        scope,
        key,
        lease: uuid::Uuid::now_v7().to_string(),
    };
    // A row can vanish between our insert and our read (released or purged): try again.
    for _ in 0..3 {
        let now = now_micros();
        if store::insert(&idem.db, &slot, fingerprint, now).await? {
            return Ok(Claimed::Owner(slot));
        }
        let Some(row) = store::find(&idem.db, &slot.scope, &slot.key).await? else {
            continue;
        };
        let expired_before = cutoff(now, idem.ttl);
        if row.created_at < expired_before {
            store::delete_expired(&idem.db, &slot.scope, &slot.key, expired_before).await?;
            continue;
        }
        if row.fingerprint != fingerprint {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this idempotency key was used with another request",
            ));
        }
        if row.state == COMPLETED {
            return replay(row).map(Claimed::Replay);
        }
        if row.locked_at < cutoff(now, idem.stale_after)
            && store::take_over(&idem.db, &slot, &row.lease, now).await?
        {
            tracing::warn!("taking over an idempotency key whose request never finished");
            return Ok(Claimed::Owner(slot));
        }
        break;
    }
    Err(ApiError::conflict(
        "idempotency_request_in_progress",
        "a request with this idempotency key is still in progress",
    )
    .with_retry_after(1))
}

/// Runs the handler in its own task and stores its response under the slot.
async fn run_and_record(idem: Idempotency, slot: Slot, next: Next, req: Request) -> Response {
    let handler = tokio::spawn(next.run(req).in_current_span());
    let response = match handler.await {
        Ok(response) => response,
        Err(e) => {
            idem.release(&slot).await;
            return ApiError::internal(anyhow::anyhow!("request handler failed: {e}"))
                .into_response();
        }
    };
    let (parts, body) = response.into_parts();
    if parts.status.is_server_error() || parts.status == StatusCode::TOO_MANY_REQUESTS {
        idem.release(&slot).await;
        return Response::from_parts(parts, body);
    }
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            idem.release(&slot).await;
            return ApiError::internal(anyhow::anyhow!("reading the response failed: {e}"))
                .into_response();
        }
    };
    let stored = store::complete(
        &idem.db,
        &slot,
        i64::from(parts.status.as_u16()),
        &encode_headers(&parts.headers),
        &STANDARD.encode(&bytes),
        now_micros(),
    )
    .await;
    match stored {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("idempotency key was taken over before its response was stored")
        }
        Err(e) => tracing::error!(error = %e, "storing an idempotent response failed"),
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn parse_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"),
        )
    };
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(invalid());
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LENGTH || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(invalid());
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| invalid())
}

async fn read_body(parts: &Parts, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    if declared
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
    {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(ApiError::bad_request(
            "unreadable_body",
            "reading the request body failed",
        )),
    }
}

/// Who the key belongs to: the verified `sub`, else a hash of the credentials, else nobody.
async fn principal(parts: &Parts) -> String {
    let Some(credentials) = parts.headers.get(header::AUTHORIZATION) else {
        return "anonymous".to_owned();
    };
    let auth = parts.extensions.get::<Arc<Authenticator>>();
    if let (Some(auth), Ok(Some(token))) = (auth, bearer_token(&parts.headers))
        && let Ok(claims) = auth.verify(token).await
    {
        return format!("sub:{}", claims.sub);
    }
    format!("authorization:{}", digest(&[credentials.as_bytes()]))
}

/// SHA-256 (hex) of length-prefixed fields, so that no two field lists collide.
fn digest(fields: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field);
    }
    hex::encode(hasher.finalize())
}

/// `now` minus `age`, in epoch microseconds.
fn cutoff(now: i64, age: Duration) -> i64 {
    now.saturating_sub(i64::try_from(age.as_micros()).unwrap_or(i64::MAX))
}

fn encode_headers(headers: &HeaderMap) -> String {
    let pairs: Vec<(&str, &str)> = STORED_HEADERS
        .iter()
        .filter_map(|name| Some((name.as_str(), headers.get(name)?.to_str().ok()?)))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

/// The stored response of a completed row, marked as replayed.
fn replay(row: Row) -> Result<Response, ApiError> {
    let corrupt = |what: &str| ApiError::internal(anyhow::anyhow!("stored response has {what}"));
    let status = row
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| corrupt("an invalid status"))?;
    let body = STANDARD
        .decode(row.response_body.unwrap_or_default())
        .map_err(|_| corrupt("an invalid body"))?;
    let pairs: Vec<(String, String)> =
        serde_json::from_str(row.response_headers.as_deref().unwrap_or("[]"))
            .map_err(|_| corrupt("invalid headers"))?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_headers(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn keys_are_visible_ascii_up_to_255_characters() {
        assert_eq!(
            parse_key(&key_headers(b"abc-123_~!")).unwrap(),
            "abc-123_~!"
        );
        assert!(parse_key(&key_headers(&[b'k'; MAX_KEY_LENGTH])).is_ok());
        for bad in [
            &b""[..],
            &[b'k'; MAX_KEY_LENGTH + 1],
            b"has space",
            b"tab\there",
            b"\xc3\xa9",
        ] {
            let err = parse_key(&key_headers(bad)).unwrap_err();
            assert_eq!(err.code(), "invalid_idempotency_key", "{bad:?}");
        }
    }

    #[test]
    fn two_key_headers_are_invalid() {
        let mut headers = key_headers(b"a");
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert_eq!(
            parse_key(&headers).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn digests_do_not_collide_across_field_boundaries() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"x"]).len(), 64);
    }

    #[test]
    fn only_selected_headers_are_stored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::LOCATION,
            HeaderValue::from_static("/api/v1/orders/ord_1"),
        );
        headers.insert(header::SET_COOKIE, HeaderValue::from_static("secret=1"));
        let stored = encode_headers(&headers);
        assert!(
            stored.contains("location") && !stored.contains("secret"),
            "{stored}"
        );
    }
}
