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
//! refused request gets a 429 problem with `Retry-After`. Without `REDIS_URL` the budgets live
//! in this process (the embedded mode's one gateway). With it, every gateway replica checks
//! the same budgets in Redis (`mercato:ratelimit:{group}:{client}`), through one Lua script
//! that keeps GCRA's theoretical arrival time per key on Redis's clock. Redis only makes
//! limits shared, never a reason to lose a request: when it errs or is slow, that request is
//! checked against this process's budgets instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// What a budget says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Let it through; this many more would pass right now.
    Allow { remaining: u32 },
    /// Refuse it; the next one passes after this long.
    Deny { wait: Duration },
}

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

    /// The check in this process's memory.
    fn check_here(&self, key: String) -> Verdict {
        match self.limiter.check_key(&key) {
            Ok(state) => Verdict::Allow {
                remaining: state.remaining_burst_capacity(),
            },
            Err(not_until) => Verdict::Deny {
                wait: not_until.wait_time_from(self.limiter.clock().now()),
            },
        }
    }

    /// GCRA's emission interval and tolerance in microseconds (Redis `TIME`'s unit), as
    /// `governor` derives them from the quota.
    fn gcra_micros(&self) -> (u64, u64) {
        let interval = (1_000_000 / u64::from(self.per_second)).max(1);
        (interval, interval * u64::from(self.burst - 1))
    }
}

/// GCRA on Redis's clock, so replicas with drifting clocks still agree. KEYS[1] holds the
/// theoretical arrival time (µs); ARGV are the emission interval and the tolerance (µs).
/// Returns {allowed 1|0, remaining burst, wait in ms}, the same numbers `governor` gives.
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local earliest = tat - tolerance
if now < earliest then
  return {0, 0, math.ceil((earliest - now) / 1000)}
end
local next_tat = math.max(tat, now) + interval
-- The key expires when the budget is full again: a missing key means a full budget.
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
  'PX', math.max(1, math.ceil((next_tat - now) / 1000)))
local remaining = math.min(now + tolerance + interval - next_tat, tolerance + interval)
return {1, math.floor(remaining / interval), 0}
";

/// How long a request waits for Redis before its own process decides.
const REDIS_BOUND: Duration = Duration::from_millis(50);
/// At most one warning per this long while Redis keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Budgets kept in Redis, shared by every gateway using the same server.
struct SharedBudgets {
    client: redis::Client,
    // `build()` is not async: the connection is made on first use (the warm-up or a request).
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
    last_warning: Mutex<Option<Instant>>,
}

impl SharedBudgets {
    fn new(client: redis::Client) -> Self {
        Self {
            client,
            connection: OnceCell::new(),
            script: redis::Script::new(GCRA_SCRIPT),
            last_warning: Mutex::new(None),
        }
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let manager = self
            .connection
            .get_or_try_init(|| async {
                // Few quick retries: requests do not wait for them (see REDIS_BOUND), and a
                // later request starts a new attempt.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(manager.clone())
    }

    async fn check(&self, key: &str, budget: &Budget) -> redis::RedisResult<Verdict> {
        let mut connection = self.connection().await?;
        let (interval, tolerance) = budget.gcra_micros();
        let (allowed, remaining, wait_ms): (i64, i64, u64) = self
            .script
            .key(format!("mercato:ratelimit:{key}"))
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut connection)
            .await?;
        Ok(if allowed == 1 {
            Verdict::Allow {
                remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            }
        } else {
            Verdict::Deny {
                wait: Duration::from_millis(wait_ms),
            }
        })
    }

    /// Connects and loads the script ahead of the first request, which then needs one
    /// round trip only.
    async fn warm_up(&self) {
        let loaded = match self.connection().await {
            Ok(mut connection) => self.script.load_async(&mut connection).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = loaded {
            self.warn(&e.to_string());
        }
    }

    fn warn(&self, error: &str) {
        let mut last = self
            .last_warning
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                error,
                "redis rate limits unavailable; this gateway's own limits apply"
            );
        }
    }
}

/// The gateway's budgets.
pub(crate) struct RateLimits {
    default: Option<Budget>,
    groups: HashMap<String, Option<Budget>>,
    auth: Arc<Authenticator>,
    shared: Option<Arc<SharedBudgets>>,
}

impl RateLimits {
    /// Whether no route has a budget (every rate is 0): the middleware would pass everything.
    pub(crate) fn is_off(&self) -> bool {
        self.default.is_none() && self.groups.values().all(Option::is_none)
    }
}

/// Checks `REDIS_URL` (`None` or blank: limits stay in the process).
pub(crate) fn check_redis_url(url: Option<&str>) -> Result<Option<redis::Client>, String> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => redis::Client::open(url)
            .map(Some)
            .map_err(|e| format!("not a valid Redis URL: {e}")),
        None => Ok(None),
    }
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
            shared: None,
        })
    }

    /// Keeps the budgets in the Redis at `redis_url` when it is set. A malformed URL leaves
    /// them in the process (`validate` refuses it before a server starts).
    pub(crate) fn shared_through(mut self, redis_url: Option<&str>) -> Self {
        match check_redis_url(redis_url) {
            Ok(Some(client)) => {
                let shared = Arc::new(SharedBudgets::new(client));
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn({
                        let shared = shared.clone();
                        async move { shared.warm_up().await }
                    });
                }
                self.shared = Some(shared);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "REDIS_URL is malformed; rate limits stay per gateway");
            }
        }
        self
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
                // Hashed so that no secret outlives the request in the limiter or in Redis;
                // a stable hash, so that every replica names the key alike.
                let digest = Sha256::digest(token.as_bytes());
                return format!("key:{}", hex::encode(&digest[..16]));
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

    /// Redis's verdict when it gives one in time, else this process's.
    async fn check(&self, key: String, budget: &Budget) -> Verdict {
        let Some(shared) = &self.shared else {
            return budget.check_here(key);
        };
        match tokio::time::timeout(REDIS_BOUND, shared.check(&key, budget)).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(e)) => {
                shared.warn(&e.to_string());
                budget.check_here(key)
            }
            Err(_) => {
                shared.warn("no answer in time");
                budget.check_here(key)
            }
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
    limits.around(request, |request| next.run(request)).await
}

impl RateLimits {
    /// Passes `request` on to `next` when its client's budget allows, with the `RateLimit-*`
    /// headers on the answer; a `429` problem otherwise.
    pub(crate) async fn around<F, Fut>(&self, request: Request, next: F) -> Response
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        let Some((group, budget)) = self.budget(request.uri().path()) else {
            return next(request).await;
        };
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let key = format!("{group}:{}", self.client(request.headers(), peer).await);
        match self.check(key, budget).await {
            Verdict::Allow { remaining } => {
                // Seconds until the budget is full again.
                let refill =
                    (budget.burst - remaining.min(budget.burst)).div_ceil(budget.per_second);
                let mut response = next(request).await;
                let headers = response.headers_mut();
                headers.insert(LIMIT, HeaderValue::from(budget.burst));
                headers.insert(REMAINING, HeaderValue::from(remaining));
                headers.insert(RESET, HeaderValue::from(refill));
                response
            }
            Verdict::Deny { wait } => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_redis_script_counts_like_the_in_memory_limiter() {
        let Ok(url) = std::env::var("TEST_REDIS_URL") else {
            println!("TEST_REDIS_URL is not set: the Redis script is not tested");
            return;
        };
        let shared = SharedBudgets::new(redis::Client::open(url).unwrap());
        let budget = Budget::new(1, 3).unwrap();
        let key = format!("unit{}:ip:10.0.0.1", rand::random::<u64>());
        let mut in_redis = Vec::new();
        let mut here = Vec::new();
        for _ in 0..4 {
            in_redis.push(shared.check(&key, &budget).await.expect("Redis answers"));
            here.push(budget.check_here(key.clone()));
        }
        assert_eq!(in_redis[..3], here[..3]);
        assert_eq!(
            here[..3],
            [2, 1, 0].map(|remaining| Verdict::Allow { remaining })
        );
        let Verdict::Deny { wait } = in_redis[3] else {
            panic!("a fourth request in a burst of 3 passed: {:?}", in_redis[3]);
        };
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );

        let mut connection = shared.connection().await.unwrap();
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("mercato:ratelimit:{key}"))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(
            (2000..=3000).contains(&ttl),
            "the key lives until the budget is full again, not {ttl} ms"
        );
    }

    #[test]
    fn a_malformed_redis_url_is_refused_and_a_blank_one_means_no_redis() {
        assert!(check_redis_url(Some("http://nope")).is_err());
        assert!(check_redis_url(Some("  ")).unwrap().is_none());
        assert!(check_redis_url(None).unwrap().is_none());
        assert!(
            check_redis_url(Some("redis://127.0.0.1:6379"))
                .unwrap()
                .is_some()
        );
    }
}
