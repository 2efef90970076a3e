//! API keys: `Authorization: Bearer mk_…` resolved to [`Claims`] by identity.
//!
//! Identity owns the keys. In embedded mode it installs a resolver over its database on the
//! process's shared [`super::Authenticator`]; a separately deployed service uses
//! [`HttpApiKeyResolver`], which asks identity's introspection endpoint and caches answers
//! for a short time (a revoked key keeps working on such a service for at most the cache TTL).
//!
//! Scopes are a small fixed vocabulary, enforced by the kernel's extractors on every route:
//! `read` allows safe methods (GET, HEAD, OPTIONS), `write` every method, and `admin` also
//! lets the key use its owner's `staff`/`admin` roles (identity strips them from other keys).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuthError, Claims};

/// Every API key starts with this; bearer tokens that do are never parsed as JWTs.
pub const API_KEY_PREFIX: &str = "mk_";

/// Identity's introspection endpoint, relative to its base URL.
pub const INTROSPECT_PATH: &str = "/api/v1/api-keys/introspect";

/// How long [`HttpApiKeyResolver`] trusts an answer.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// Most keys [`HttpApiKeyResolver`] remembers.
pub const DEFAULT_CACHE_ENTRIES: usize = 1024;

/// Longest API key accepted; anything longer is rejected without a lookup.
const MAX_KEY_BYTES: usize = 256;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Safe methods only: GET, HEAD, OPTIONS.
    Read,
    /// Every method; implies `read`.
    Write,
    /// Every method with the owner's staff/admin roles; implies `write`.
    Admin,
}

impl Scope {
    /// Every scope, weakest first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// The scope's name: `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// The scope of this name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether holding `self` grants `other`.
    pub fn implies(self, other: Scope) -> bool {
        self.rank() >= other.rank()
    }

    /// The scope a request with `method` needs.
    pub fn for_method(method: &Method) -> Self {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Self::Read
        } else {
            Self::Write
        }
    }

    fn rank(self) -> u8 {
        match self {
            Self::Read => 0,
            Self::Write => 1,
            Self::Admin => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`ApiKeyResolver::resolve`] returns: implementations write `Box::pin(async move {…})`.
pub type ResolveFuture<'a> = BoxFuture<'a, Result<Option<Claims>, AuthError>>;

/// SHA-256 of an API key in lowercase hex: what identity stores and caches are keyed by.
pub fn hash_api_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Turns an API key secret into the claims of its owner.
///
/// `Ok(None)` means the key is unknown, revoked or expired (answered 401); `Err` that the
/// answer could not be obtained.
pub trait ApiKeyResolver: Send + Sync {
    /// The claims of the key `secret`, if it is valid.
    fn resolve<'a>(&'a self, secret: &'a str) -> ResolveFuture<'a>;
}

/// Where [`super::Authenticator`] keeps its resolver, set after construction.
#[derive(Default)]
pub(super) struct ResolverSlot(std::sync::RwLock<Option<std::sync::Arc<dyn ApiKeyResolver>>>);

impl fmt::Debug for ResolverSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        f.debug_struct("ResolverSlot").field("set", &set).finish()
    }
}

impl ResolverSlot {
    pub(super) fn set(&self, resolver: std::sync::Arc<dyn ApiKeyResolver>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(resolver);
    }

    /// Resolves `secret` with the installed resolver; no resolver means no key is valid.
    pub(super) async fn resolve(&self, secret: &str) -> Result<Claims, AuthError> {
        if secret.len() > MAX_KEY_BYTES {
            return Err(AuthError::InvalidApiKey);
        }
        let resolver = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(resolver) = resolver else {
            return Err(AuthError::InvalidApiKey);
        };
        resolver
            .resolve(secret)
            .await?
            .ok_or(AuthError::InvalidApiKey)
    }
}

/// Resolves API keys by asking identity (`POST {url}/api/v1/api-keys/introspect {"key"}`),
/// for services deployed apart from it. Valid answers are cached for a short time.
pub struct HttpApiKeyResolver {
    urls: Vec<String>,
    next: AtomicUsize,
    client: reqwest::Client,
    ttl: Duration,
    max_entries: usize,
    cache: Mutex<HashMap<String, (Instant, Claims)>>,
}

impl fmt::Debug for HttpApiKeyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpApiKeyResolver")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct IntrospectRequest<'a> {
    key: &'a str,
}

impl HttpApiKeyResolver {
    /// A resolver asking the identity replicas at `urls` in turn.
    pub fn new(urls: Vec<String>) -> Result<Self, AuthError> {
        let urls: Vec<String> = urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(AuthError::KeySet(
                "no identity url to check api keys".into(),
            ));
        }
        for url in &urls {
            reqwest::Url::parse(url)
                .map_err(|e| AuthError::KeySet(format!("invalid identity url `{url}`: {e}")))?;
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AuthError::KeySet(format!("cannot build the identity client: {e}")))?;
        Ok(Self {
            urls,
            next: AtomicUsize::new(0),
            client,
            ttl: DEFAULT_CACHE_TTL,
            max_entries: DEFAULT_CACHE_ENTRIES,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Sets how long answers are cached (zero: never) and how many are kept.
    pub fn with_cache(mut self, ttl: Duration, max_entries: usize) -> Self {
        self.ttl = ttl;
        self.max_entries = max_entries;
        self
    }

    fn cached(&self, hash: &str) -> Option<Claims> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(hash)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, claims)| claims.clone())
    }

    fn remember(&self, hash: String, claims: &Claims) {
        if self.ttl.is_zero() || self.max_entries == 0 {
            return;
        }
        let left = claims.exp - chrono::Utc::now().timestamp();
        let left = Duration::from_secs(u64::try_from(left).unwrap_or(0));
        let until = Instant::now() + self.ttl.min(left);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.max_entries {
            let now = Instant::now();
            cache.retain(|_, (at, _)| *at > now);
            if cache.len() >= self.max_entries {
                cache.clear();
            }
        }
        cache.insert(hash, (until, claims.clone()));
    }

    async fn introspect(&self, secret: &str) -> Result<Option<Claims>, AuthError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len();
        let url = format!("{}{INTROSPECT_PATH}", self.urls[turn]);
        let unavailable = |e: &dyn fmt::Display| {
            tracing::warn!(%url, error = %e, "introspecting an api key failed");
            AuthError::IdentityUnavailable
        };
        let response = self
            .client
            .post(&url)
            .json(&IntrospectRequest { key: secret })
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        match response.status() {
            StatusCode::OK => response
                .json::<Claims>()
                .await
                .map(Some)
                .map_err(|e| unavailable(&e)),
            StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND => Ok(None),
            status => Err(unavailable(&status)),
        }
    }
}

impl ApiKeyResolver for HttpApiKeyResolver {
    fn resolve<'a>(&'a self, secret: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let hash = hash_api_key(secret);
            if let Some(claims) = self.cached(&hash) {
                return Ok(Some(claims));
            }
            let claims = self.introspect(secret).await?;
            if let Some(claims) = &claims {
                self.remember(hash, claims);
            }
            Ok(claims)
        })
    }
}

#[cfg(test)]
#[path = "api_keys_tests.rs"]
mod tests;
