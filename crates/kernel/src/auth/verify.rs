//! Token verification against a JWKS held in memory, refreshed from a URL when needed.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::api_keys::{API_KEY_PREFIX, ApiKeyResolver, HttpApiKeyResolver, ResolverSlot};
use super::{AuthError, Claims};
use crate::config::Config;
use crate::service::ServiceInfo;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Least time between two fetches of a JWKS URL triggered by unknown key ids.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// `kid` of service tokens (HS256 under the shared service secret).
pub const SERVICE_KEY_ID: &str = "mercato-service";

/// The role every service token carries beside `staff`.
pub const SERVICE_ROLE: &str = "service";

/// Shortest accepted service secret.
pub const MIN_SERVICE_SECRET_BYTES: usize = 32;

/// How long a service token is valid; callers renew it well before.
pub const SERVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Longest token accepted; anything longer is rejected before decoding.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Largest JWKS document accepted from a URL.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Verifies access tokens: EdDSA (Ed25519) signatures by a key of the JWKS, `exp`, `nbf` and,
/// when configured, `iss`.
///
/// Keys are looked up by the token's `kid`; tokens without one are rejected. Shared as
/// `Arc<Authenticator>`; [`Authenticator::replace_keys`] swaps the key set while serving.
#[derive(Debug)]
pub struct Authenticator {
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Keys of the identity service running in this process, kept apart from the configured
    /// ones so that pushing them does not drop a configured JWKS.
    local: RwLock<HashMap<String, DecodingKey>>,
    validation: Validation,
    remote: Option<RemoteKeys>,
    api_keys: ResolverSlot,
    service: RwLock<Option<ServiceSecret>>,
}

/// The HMAC key of service tokens: the platform's services share it, nobody else holds it.
struct ServiceSecret {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceSecret(***)")
    }
}

/// Where the key set comes from when it is served over HTTP.
#[derive(Debug)]
struct RemoteKeys {
    url: String,
    client: reqwest::Client,
    min_interval: Duration,
    /// When the last fetch started; the lock also makes concurrent refreshes wait for one.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Default for Authenticator {
    /// An authenticator with no keys: every token is rejected until keys are installed.
    fn default() -> Self {
        Self::from_jwks(JwkSet::default(), None)
    }
}

impl Authenticator {
    /// An authenticator over a fixed key set; `issuer`, when set, must match `iss`.
    pub fn from_jwks(jwks: JwkSet, issuer: Option<String>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        // Every Mercato service accepts the platform's tokens: there is no audience to check.
        validation.validate_aud = false;
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            validation.set_required_spec_claims(&["exp", "iss"]);
        }
        Self {
            keys: RwLock::new(decoding_keys(&jwks)),
            local: RwLock::new(HashMap::new()),
            validation,
            remote: None,
            api_keys: ResolverSlot::default(),
            service: RwLock::new(None),
        }
    }

    /// An authenticator over a JWKS document.
    pub fn from_jwks_json(json: &str, issuer: Option<String>) -> Result<Self, AuthError> {
        Ok(Self::from_jwks(parse_jwks(json)?, issuer))
    }

    /// An authenticator over the JWKS served at `url`.
    ///
    /// The set is fetched now and again, at most once per [`DEFAULT_REFRESH_INTERVAL`], when
    /// a token names an unknown `kid`. A failed first fetch is logged and leaves the set empty
    /// (identity may start after this service); only an unusable URL is an error.
    pub async fn from_jwks_url(url: &str, issuer: Option<String>) -> Result<Self, AuthError> {
        reqwest::Url::parse(url)
            .map_err(|e| AuthError::KeySet(format!("invalid JWKS url `{url}`: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AuthError::KeySet(format!("cannot build the JWKS client: {e}")))?;
        let mut auth = Self::from_jwks(JwkSet::default(), issuer);
        auth.remote = Some(RemoteKeys {
            url: url.to_owned(),
            client,
            min_interval: DEFAULT_REFRESH_INTERVAL,
            last_fetch: tokio::sync::Mutex::new(None),
        });
        auth.refresh().await;
        Ok(auth)
    }

    /// The authenticator the configuration asks for: `MERCATO_JWKS_FILE`, else
    /// `MERCATO_JWKS_URL`, else an empty key set (keys come later through
    /// [`Authenticator::replace_keys`]); `MERCATO_JWT_ISSUER` sets the expected issuer.
    ///
    /// When identity's URL is configured (`IDENTITY_SERVICE_URL` / `USER_SERVICE_URL`), API
    /// keys are resolved by asking it ([`HttpApiKeyResolver`]); in embedded mode identity
    /// installs its own resolver when it starts.
    pub async fn from_config(cfg: &Config) -> Result<Self, AuthError> {
        let identity_urls = ServiceInfo::find("identity")
            .map(|info| cfg.service_urls(info))
            .unwrap_or_default();
        let auth = Self::keys_from_config(cfg, identity_urls.first()).await?;
        if let Some(secret) = &cfg.mercato_service_secret {
            auth.set_service_secret(secret.expose().as_bytes())?;
        }
        if !identity_urls.is_empty() {
            auth.set_api_key_resolver(std::sync::Arc::new(HttpApiKeyResolver::new(identity_urls)?));
        }
        Ok(auth)
    }

    /// Keys from `MERCATO_JWKS_FILE`, else `MERCATO_JWKS_URL`, else the JWKS of a separately
    /// served identity service, else none (identity in the same process pushes its own).
    async fn keys_from_config(
        cfg: &Config,
        identity_url: Option<&String>,
    ) -> Result<Self, AuthError> {
        let issuer = cfg.mercato_jwt_issuer.clone();
        if let Some(path) = &cfg.mercato_jwks_file {
            let json = tokio::fs::read_to_string(path).await.map_err(|e| {
                AuthError::KeySet(format!("cannot read JWKS file `{}`: {e}", path.display()))
            })?;
            return Self::from_jwks_json(&json, issuer);
        }
        if let Some(url) = cfg.mercato_jwks_url.as_deref().filter(|u| !u.is_empty()) {
            return Self::from_jwks_url(url, issuer).await;
        }
        if let Some(identity) = identity_url {
            let url = format!("{}/.well-known/jwks.json", identity.trim_end_matches('/'));
            return Self::from_jwks_url(&url, issuer).await;
        }
        Ok(Self::from_jwks(JwkSet::default(), issuer))
    }

    /// Installs (or replaces) what resolves `Bearer mk_…` API keys; without one every API
    /// key is rejected.
    pub fn set_api_key_resolver(&self, resolver: std::sync::Arc<dyn ApiKeyResolver>) {
        self.api_keys.set(resolver);
    }

    /// The claims of a bearer credential: an API key (`mk_…`) through the resolver, else a
    /// JWT through [`Authenticator::verify`].
    pub async fn authenticate(&self, token: &str) -> Result<Claims, AuthError> {
        if token.starts_with(API_KEY_PREFIX) {
            self.api_keys.resolve(token).await
        } else {
            self.verify(token).await
        }
    }

    /// Sets the least time between two refreshes of a URL key set (tests use zero).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        if let Some(remote) = &mut self.remote {
            remote.min_interval = interval;
        }
        self
    }

    /// Replaces the key set, e.g. when identity rotates its signing key in-process.
    pub fn replace_keys(&self, jwks: JwkSet) {
        let keys = decoding_keys(&jwks);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// Installs the keys of the identity service of this process (replacing the ones it
    /// installed before, e.g. after a rotation); configured keys stay.
    pub fn set_local_keys(&self, jwks: JwkSet) {
        let keys = decoding_keys(&jwks);
        *self.local.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// The key ids currently accepted.
    pub fn key_ids(&self) -> Vec<String> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let local = self.local.read().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<String> = keys.keys().chain(local.keys()).cloned().collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Installs the secret that signs and verifies service tokens; at least
    /// [`MIN_SERVICE_SECRET_BYTES`] bytes.
    pub fn set_service_secret(&self, secret: &[u8]) -> Result<(), AuthError> {
        if secret.len() < MIN_SERVICE_SECRET_BYTES {
            return Err(AuthError::KeySet(format!(
                "the service secret must have at least {MIN_SERVICE_SECRET_BYTES} bytes"
            )));
        }
        *self.service.write().unwrap_or_else(PoisonError::into_inner) = Some(ServiceSecret {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        });
        Ok(())
    }

    /// Whether service tokens can be made and checked.
    pub fn has_service_secret(&self) -> bool {
        self.service
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// A token for `service` calling another service of the platform: subject
    /// `svc_<service>`, roles `staff` and `service`, valid for [`SERVICE_TOKEN_LIFETIME`].
    pub fn service_token(&self, service: &str) -> Result<String, AuthError> {
        let guard = self.service.read().unwrap_or_else(PoisonError::into_inner);
        let secret = guard.as_ref().ok_or_else(|| {
            AuthError::KeySet("no service secret (MERCATO_SERVICE_SECRET) is configured".into())
        })?;
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(SERVICE_TOKEN_LIFETIME.as_secs()).unwrap_or(300);
        let claims = Claims {
            sub: format!("svc_{service}"),
            roles: vec!["staff".to_owned(), SERVICE_ROLE.to_owned()],
            exp: now + lifetime,
            iat: now,
            iss: self
                .validation
                .iss
                .as_ref()
                .and_then(|i| i.iter().next().cloned()),
            ..Claims::default()
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(SERVICE_KEY_ID.to_owned());
        jsonwebtoken::encode(&header, &claims, &secret.encoding)
            .map_err(|e| AuthError::KeySet(format!("cannot sign a service token: {e}")))
    }

    fn verify_service_token(&self, token: &str) -> Result<Claims, AuthError> {
        let guard = self.service.read().unwrap_or_else(PoisonError::into_inner);
        let secret = guard.as_ref().ok_or(AuthError::UnsupportedAlgorithm)?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![Algorithm::HS256];
        jsonwebtoken::decode::<Claims>(token, &secret.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| map_jwt_error(e.kind()))
    }

    /// Verifies a compact JWT and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        // HMAC is only ever the platform's own service key, and only when one is installed.
        if header.alg == Algorithm::HS256 && header.kid.as_deref() == Some(SERVICE_KEY_ID) {
            return self.verify_service_token(token);
        }
        // Checked before any key is touched: `none`, HMAC and RSA tokens never reach crypto.
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh_if_due().await;
                self.key(&kid).ok_or(AuthError::UnknownKey)?
            }
        };
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| map_jwt_error(e.kind()))
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        let configured = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned();
        configured.or_else(|| {
            self.local
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(kid)
                .cloned()
        })
    }

    /// Re-fetches a URL key set unless that happened less than `min_interval` ago.
    async fn refresh_if_due(&self) {
        let Some(remote) = &self.remote else { return };
        let mut last = remote.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < remote.min_interval) {
            return;
        }
        *last = Some(Instant::now());
        self.fetch_and_install(remote).await;
    }

    async fn refresh(&self) {
        let Some(remote) = &self.remote else { return };
        let mut last = remote.last_fetch.lock().await;
        *last = Some(Instant::now());
        self.fetch_and_install(remote).await;
    }

    async fn fetch_and_install(&self, remote: &RemoteKeys) {
        match fetch_jwks(remote).await {
            Ok(jwks) => {
                self.replace_keys(jwks);
                tracing::debug!(url = %remote.url, keys = ?self.key_ids(), "fetched JWKS");
            }
            Err(e) => tracing::warn!(url = %remote.url, error = %e, "fetching JWKS failed"),
        }
    }
}

async fn fetch_jwks(remote: &RemoteKeys) -> Result<JwkSet, AuthError> {
    let failed = |e: reqwest::Error| AuthError::KeySet(format!("fetching JWKS failed: {e}"));
    let response = remote
        .client
        .get(&remote.url)
        .send()
        .await
        .map_err(failed)?;
    let response = response.error_for_status().map_err(failed)?;
    let body = response.bytes().await.map_err(failed)?;
    if body.len() > MAX_JWKS_BYTES {
        return Err(AuthError::KeySet(format!(
            "JWKS is larger than {MAX_JWKS_BYTES} bytes"
        )));
    }
    let json = std::str::from_utf8(&body)
        .map_err(|_| AuthError::KeySet("JWKS is not UTF-8".to_owned()))?;
    parse_jwks(json)
}

/// Parses a JWKS document, skipping keys that do not parse so one odd key spoils nothing.
fn parse_jwks(json: &str) -> Result<JwkSet, AuthError> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_str(json)
        .map_err(|e| AuthError::KeySet(format!("JWKS is not a key set: {e}")))?;
    let keys = raw
        .keys
        .into_iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        .collect();
    Ok(JwkSet { keys })
}

/// The Ed25519 signing keys of a set, by `kid`; every other key is ignored.
fn decoding_keys(jwks: &JwkSet) -> HashMap<String, DecodingKey> {
    let mut keys = HashMap::new();
    for jwk in &jwks.keys {
        let Some(kid) = jwk.common.key_id.as_deref() else {
            continue;
        };
        if jwk
            .common
            .key_algorithm
            .is_some_and(|alg| alg != KeyAlgorithm::EdDSA)
            || jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
            continue;
        };
        if params.curve != EllipticCurve::Ed25519 {
            continue;
        }
        match URL_SAFE_NO_PAD.decode(params.x.trim_end_matches('=')) {
            Ok(raw) if raw.len() == 32 => {
                keys.insert(kid.to_owned(), DecodingKey::from_ed_der(&raw));
            }
            _ => tracing::warn!(
                kid,
                "ignoring a JWKS key with a malformed Ed25519 public key"
            ),
        }
    }
    keys
}

fn map_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
        ErrorKind::InvalidSignature | ErrorKind::InvalidEddsaKey => AuthError::InvalidSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => AuthError::UnsupportedAlgorithm,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Json(_) => AuthError::InvalidClaims,
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_other_than_ed25519_signing_keys_are_ignored() {
        let json = r#"{"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "good", "alg": "EdDSA", "use": "sig",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird", "kid": "odd", "stuff": [1, 2]},
            "not even an object"
        ]}"#;
        let auth = Authenticator::from_jwks_json(json, None).unwrap();
        assert_eq!(auth.key_ids(), ["good"]);
    }

    #[test]
    fn documents_that_are_not_key_sets_are_errors() {
        for json in ["", "[]", "{\"keys\": 3}", "{}"] {
            let err = Authenticator::from_jwks_json(json, None).unwrap_err();
            assert!(matches!(err, AuthError::KeySet(_)), "{json}: {err:?}");
        }
    }

    #[tokio::test]
    async fn an_empty_key_set_rejects_every_token() {
        let keys = crate::auth::testing::TestKeys::generate();
        let token = keys.token_for("usr_1", &[], None);
        let err = Authenticator::default().verify(&token).await.unwrap_err();
        assert_eq!(err, AuthError::UnknownKey);
    }

    #[tokio::test]
    async fn oversized_tokens_are_rejected_before_decoding() {
        let token = "a".repeat(MAX_TOKEN_BYTES + 1);
        let err = Authenticator::default().verify(&token).await.unwrap_err();
        assert_eq!(err, AuthError::Malformed);
    }
}
