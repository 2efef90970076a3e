//! Calls from one service to another (DESIGN.md §1): in-process through the callee's router
//! when both run in one process, over HTTP to `<NAME>_SERVICE_URL` when they do not.
//!
//! Every call carries a service token (`svc_<caller>`, roles `staff` and `service`) signed
//! with the platform's shared service secret, so the callee authorizes it like any staff
//! request. Typed clients (e.g. the orders service's calls to inventory) are thin wrappers
//! over [`ServiceClient::send`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::auth::{Authenticator, SERVICE_TOKEN_LIFETIME};
use crate::config::Config;
use crate::idempotency::IDEMPOTENCY_KEY;
use crate::service::ServiceInfo;

/// Largest answer read from another service.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Why a call to another service gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service answered with a 4xx problem: the request itself was refused.
    #[error("{service} refused the request ({status}): {code}: {detail}")]
    Refused {
        /// Callee.
        service: &'static str,
        /// Status of the answer.
        status: StatusCode,
        /// The problem's `code` (`type` suffix), empty when the body has none.
        code: String,
        /// The problem's `detail`.
        detail: String,
        /// The whole problem body, for its extension members.
        problem: Value,
    },
    /// No answer, a timeout or a 5xx: the same call may succeed later.
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        /// Callee.
        service: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A 2xx answer that does not have the expected shape.
    #[error("{service} answered something unexpected: {reason}")]
    Invalid {
        /// Callee.
        service: &'static str,
        /// What did not parse.
        reason: String,
    },
}

impl CallError {
    /// Whether repeating the same call (same idempotency key) may succeed: no answer, a 5xx,
    /// a 429, or a 409 saying the first attempt is still running.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. } => true,
            Self::Refused { status, code, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS
                    || (*status == StatusCode::CONFLICT
                        && matches!(
                            code.as_str(),
                            "idempotency_request_in_progress" | "payment_in_flight"
                        ))
            }
            Self::Invalid { .. } => false,
        }
    }

    /// The problem code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where the services of the platform are: routers of this process, else the configured URLs.
///
/// Cheap to clone; the binary registers each in-process service as it starts, so a client
/// made before its callee started still finds it when it calls.
#[derive(Clone)]
pub struct Services(Arc<Inner>);

struct Inner {
    local: RwLock<HashMap<&'static str, Router>>,
    config: Arc<Config>,
    auth: Arc<Authenticator>,
    http: reqwest::Client,
    next: AtomicUsize,
    timeout: Duration,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let local = self.0.local.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Services")
            .field("in_process", &local.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Services {
    /// The directory of a process with `config` and its shared verifier (which signs the
    /// service tokens).
    pub fn new(config: Arc<Config>, auth: Arc<Authenticator>) -> Self {
        let timeout = Duration::from_millis(config.mercato_service_timeout_ms.max(1));
        Self(Arc::new(Inner {
            local: RwLock::new(HashMap::new()),
            http: reqwest::Client::builder()
                .timeout(timeout)
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            config,
            auth,
            next: AtomicUsize::new(0),
            timeout,
        }))
    }

    /// Makes `router` the way to reach service `name` from this process.
    pub fn register(&self, name: &'static str, router: Router) {
        self.0
            .local
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, router);
    }

    /// A client of service `callee` acting as service `caller`.
    pub fn client(&self, caller: &'static str, callee: &'static str) -> ServiceClient {
        ServiceClient {
            services: self.clone(),
            caller,
            callee,
            token: Arc::new(Mutex::new(None)),
        }
    }

    fn router(&self, name: &str) -> Option<Router> {
        self.0
            .local
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn base_url(&self, name: &'static str) -> Option<String> {
        let urls = ServiceInfo::find(name)
            .map(|info| self.0.config.service_urls(info))
            .unwrap_or_default();
        if urls.is_empty() {
            return None;
        }
        let i = self.0.next.fetch_add(1, Ordering::Relaxed) % urls.len();
        urls.into_iter().nth(i)
    }
}

/// Calls one service of the platform as another.
#[derive(Clone)]
pub struct ServiceClient {
    services: Services,
    caller: &'static str,
    callee: &'static str,
    token: Arc<Mutex<Option<(String, Instant)>>>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("caller", &self.caller)
            .field("callee", &self.callee)
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// `GET path` (with its query string), parsed as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        self.send(Method::GET, path, None::<&()>, None).await
    }

    /// `POST path` with a JSON body and, when given, an `Idempotency-Key`.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: Option<&str>,
    ) -> Result<T, CallError> {
        self.send(Method::POST, path, Some(body), idempotency_key)
            .await
    }

    /// Sends one request and parses a 2xx answer as `T`; a 4xx becomes
    /// [`CallError::Refused`], anything else [`CallError::Unavailable`].
    pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<T, CallError> {
        let unavailable = |reason: String| CallError::Unavailable {
            service: self.callee,
            reason,
        };
        let token = self.token().map_err(|e| unavailable(e.to_string()))?;
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| unavailable(e.to_string()))?),
            None => None,
        };
        let (status, bytes) = if let Some(router) = self.services.router(self.callee) {
            self.in_process(router, method, path, body, idempotency_key, &token)
                .await?
        } else if let Some(base) = self.services.base_url(self.callee) {
            self.remote(&base, method, path, body, idempotency_key, &token)
                .await?
        } else {
            return Err(unavailable(format!(
                "not in this process and no {}_SERVICE_URL is set",
                self.callee.to_ascii_uppercase()
            )));
        };
        self.interpret(status, &bytes)
    }

    fn interpret<T: DeserializeOwned>(
        &self,
        status: StatusCode,
        bytes: &[u8],
    ) -> Result<T, CallError> {
        if status.is_success() {
            return serde_json::from_slice(bytes).map_err(|e| CallError::Invalid {
                service: self.callee,
                reason: e.to_string(),
            });
        }
        if status.is_client_error() {
            let problem: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            let text = |key: &str| {
                problem
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            return Err(CallError::Refused {
                service: self.callee,
                status,
                code: text("code"),
                detail: text("detail"),
                problem,
            });
        }
        Err(CallError::Unavailable {
            service: self.callee,
            reason: format!(
                "answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ),
        })
    }

    async fn in_process(
        &self,
        router: Router,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
        token: &str,
    ) -> Result<(StatusCode, bytes::Bytes), CallError> {
        let unavailable = |reason: String| CallError::Unavailable {
            service: self.callee,
            reason,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = idempotency_key {
            let value = HeaderValue::from_str(key).map_err(|e| unavailable(e.to_string()))?;
            request = request.header(IDEMPOTENCY_KEY, value);
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .map_err(|e| unavailable(e.to_string()))?;
        let call = router.oneshot(request);
        let response = match tokio::time::timeout(self.services.0.timeout, call).await {
            Ok(Ok(response)) => response,
            Ok(Err(infallible)) => match infallible {},
            Err(_) => return Err(unavailable("timed out".to_owned())),
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        Ok((status, bytes))
    }

    async fn remote(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
        token: &str,
    ) -> Result<(StatusCode, bytes::Bytes), CallError> {
        let unavailable = |reason: String| CallError::Unavailable {
            service: self.callee,
            reason,
        };
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let mut request = self.services.0.http.request(method, url).bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(unavailable("answer too large".to_owned()));
        }
        Ok((status, bytes))
    }

    /// A service token, renewed when half its lifetime has passed.
    fn token(&self) -> Result<String, crate::auth::AuthError> {
        let mut slot = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((token, made)) = slot.as_ref()
            && made.elapsed() < SERVICE_TOKEN_LIFETIME / 2
        {
            return Ok(token.clone());
        }
        let token = self.services.0.auth.service_token(self.caller)?;
        *slot = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Claims;
    use axum::routing::{get, post};

    async fn whoami(claims: Claims) -> axum::Json<Claims> {
        axum::Json(claims)
    }

    fn services() -> Services {
        let auth = Arc::new(Authenticator::default());
        auth.set_service_secret(&[7; 32]).unwrap();
        let router = Router::new()
            .route("/me", get(whoami))
            .route(
                "/refuse",
                post(|| async {
                    crate::ApiError::conflict("insufficient_stock", "only 2 left")
                        .with_extension("available", 2)
                }),
            )
            .route(
                "/boom",
                get(|| async { (StatusCode::BAD_GATEWAY, "provider down") }),
            )
            .layer(axum::Extension(auth.clone()));
        let services = Services::new(Arc::new(Config::default()), auth);
        services.register("inventory", router);
        services
    }

    #[tokio::test]
    async fn in_process_calls_carry_a_service_token_the_callee_accepts() {
        let client = services().client("orders", "inventory");
        let claims: Claims = client.get("/me").await.unwrap();
        assert_eq!(claims.sub, "svc_orders");
        assert!(claims.has_role(crate::auth::Role::Staff));
    }

    #[tokio::test]
    async fn refusals_keep_the_problem_and_5xx_are_transient() {
        let client = services().client("orders", "inventory");
        let err = client
            .post::<_, Value>("/refuse", &serde_json::json!({}), Some("k1"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("insufficient_stock"));
        assert!(!err.is_transient());
        let CallError::Refused { problem, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(problem["available"], 2);
        let err = client.get::<Value>("/boom").await.unwrap_err();
        assert!(err.is_transient(), "{err}");
    }

    #[tokio::test]
    async fn a_service_neither_local_nor_configured_is_unavailable() {
        let err = services()
            .client("orders", "payments")
            .get::<Value>("/x")
            .await
            .unwrap_err();
        assert!(err.is_transient());
        assert!(err.to_string().contains("PAYMENTS_SERVICE_URL"), "{err}");
    }

    #[tokio::test]
    async fn without_a_secret_no_token_is_made_and_none_is_accepted() {
        let auth = Authenticator::default();
        assert!(auth.service_token("orders").is_err());
        let other = Authenticator::default();
        other.set_service_secret(&[1; 32]).unwrap();
        let token = other.service_token("orders").unwrap();
        assert!(auth.verify(&token).await.is_err());
        auth.set_service_secret(&[2; 32]).unwrap();
        assert!(auth.verify(&token).await.is_err(), "another secret");
        assert!(auth.set_service_secret(&[3; 8]).is_err(), "too short");
    }
}
