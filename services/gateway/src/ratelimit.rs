//! Rate limiting at the edge: GCRA per client, with limits per route group.
//!
//! A client is its API key (`Authorization: Bearer mk_…`), else the user of a valid access
//! token, else the peer's IP address: signed-in users behind one NAT do not share a budget,
//! and a key is limited wherever it is used from. The default budget is
//! `GATEWAY_RATE_LIMIT_RPS` requests per second with bursts of `GATEWAY_RATE_LIMIT_BURST`;
//! `GATEWAY_RATE_LIMITS` gives route groups their own (`auth=5/20; search=50/100`: the
//! group is the first path segment after `/api/v1/`). A rate of 0 turns limiting off.
//!
//! Every answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`; a
//! refused request gets a 429 problem with `Retry-After`. Limits live in this process (the
//! embedded mode's one gateway); several gateway replicas each enforce them on their own.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use mercato_kernel::ApiError;
use mercato_kernel::auth::{Authenticator, bearer_token};

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One budget: a keyed GCRA limiter and what it allows.
struct Budget {
    limiter: Keyed,
    burst: u32,
    per_second: u32,
}

impl Budget {
    fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(1))?;
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            burst: burst.get(),
            per_second: rate.get(),
        })
    }
}

/// The gateway's budgets.
pub(crate) struct RateLimits {
    default: Option<Budget>,
    groups: HashMap<String, Option<Budget>>,
    auth: Arc<Authenticator>,
    hasher: RandomState,
}

impl RateLimits {
    /// From the configuration; a malformed `GATEWAY_RATE_LIMITS` is an error, not a silently
    /// unlimited route.
    pub(crate) fn new(
        per_second: u32,
        burst: u32,
        groups: &str,
        auth: Arc<Authenticator>,
    ) -> Result<Self, String> {
        let mut parsed = HashMap::new();
        for rule in groups.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let (group, limit) = rule
                .split_once('=')
                .ok_or_else(|| format!("`{rule}`: expected group=rate/burst"))?;
            let (rate, burst) = limit.split_once('/').unwrap_or((limit, limit));
            let number = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("`{rule}`: `{s}` is not a number"))
            };
            parsed.insert(
                group.trim().to_owned(),
                Budget::new(number(rate)?, number(burst)?),
            );
        }
        Ok(Self {
            default: Budget::new(per_second, burst),
            groups: parsed,
            auth,
            hasher: RandomState::new(),
        })
    }

    /// Forgets clients whose budget is full again, so memory follows the active clients.
    pub(crate) fn prune(&self) {
        for budget in self.groups.values().flatten().chain(&self.default) {
            budget.limiter.retain_recent();
            budget.limiter.shrink_to_fit();
        }
    }

    fn budget(&self, path: &str) -> Option<(&str, &Budget)> {
        let rest = path.strip_prefix("/api/")?;
        let rest = rest.strip_prefix("v1/").unwrap_or(rest);
        let segment = rest.split('/').next().unwrap_or_default();
        match self.groups.get_key_value(segment) {
            Some((group, budget)) => budget.as_ref().map(|b| (group.as_str(), b)),
            None => self.default.as_ref().map(|b| ("default", b)),
        }
    }

    /// Who the request is for rate limiting.
    async fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
        if let Ok(Some(token)) = bearer_token(headers) {
            if token.starts_with("mk_") {
                // Keys are hashed so that no secret outlives the request in the limiter.
                return format!("key:{:x}", self.hasher.hash_one(token));
            }
            if let Ok(claims) = self.auth.verify(token).await {
                return format!("user:{}", claims.sub);
            }
        }
        match peer {
            Some(addr) => format!("ip:{}", addr.ip()),
            None => "ip:unknown".to_owned(),
        }
    }
}

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The middleware.
pub(crate) async fn limit(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let Some((group, budget)) = limits.budget(request.uri().path()) else {
        return next.run(request).await;
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let key = format!("{group}:{}", limits.client(request.headers(), peer).await);
    match budget.limiter.check_key(&key) {
        Ok(state) => {
            let remaining = state.remaining_burst_capacity();
            // Seconds until the budget is full again.
            let refill = (budget.burst - remaining.min(budget.burst)).div_ceil(budget.per_second);
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert(LIMIT, HeaderValue::from(budget.burst));
            headers.insert(REMAINING, HeaderValue::from(remaining));
            headers.insert(RESET, HeaderValue::from(refill));
            response
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(budget.limiter.clock().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests: {} per second with bursts of {} allowed",
                    budget.per_second, budget.burst
                ),
            )
            .with_retry_after(seconds.max(1))
            .into_response();
            let headers = response.headers_mut();
            headers.insert(LIMIT, HeaderValue::from(budget.burst));
            headers.insert(REMAINING, HeaderValue::from(0));
            headers.insert(RESET, HeaderValue::from(seconds.max(1)));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

/// Prunes idle clients every minute until the process ends.
pub(crate) fn spawn_pruning(limits: &Arc<RateLimits>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let limits = Arc::downgrade(limits);
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            match limits.upgrade() {
                Some(limits) => limits.prune(),
                None => return,
            }
        }
    });
}
