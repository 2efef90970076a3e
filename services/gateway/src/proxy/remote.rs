//! Services over HTTP: HTTP/1.1 keep-alive connections (see `connections`), balanced over
//! each service's replicas, bodies streamed both ways.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::uri::{PathAndQuery, Scheme, Uri};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Frame, SizeHint};
use mercato_kernel::Config;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connections::{self, Answered, SendError, Settings};
use super::headers::strip_hop_by_hop;
use super::{Probe, ProxyError, probe, read_limited};

/// What every remote upstream shares: connection settings, a cap on the connections in use.
#[derive(Clone)]
pub(crate) struct Pool {
    connections: Settings,
    sockets: Arc<Semaphore>,
    body_limit: usize,
    balance: Balance,
}

/// How a replica is chosen (`GATEWAY_LB_STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Each replica in turn.
    RoundRobin,
    /// The replica with the fewest requests in flight.
    LeastOutstanding,
    /// Of two replicas picked at random, the one with fewer requests in flight.
    PowerOfTwo,
}

impl Strategy {
    /// The strategy of this name: `round_robin`, `least_outstanding` or `p2c`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "round_robin" => Some(Self::RoundRobin),
            "least_outstanding" => Some(Self::LeastOutstanding),
            "p2c" | "power_of_two" => Some(Self::PowerOfTwo),
            _ => None,
        }
    }
}

/// Balancing and health settings.
#[derive(Debug, Clone, Copy)]
struct Balance {
    strategy: Strategy,
    /// How often every replica's `/health` is asked (zero: never).
    health_interval: Duration,
    /// Consecutive failures (5xx or no connection) that eject a replica.
    eject_after: u32,
    /// How long an ejected replica is left out before it is tried again.
    eject_for: Duration,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Pool {
    /// A pool tuned by the `GATEWAY_*` settings.
    pub(crate) fn new(config: &Config) -> Self {
        let permits = config.gateway_max_sockets.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            connections: Settings {
                connect_timeout: config.gateway_request_timeout(),
                max_idle: config.gateway_max_free_sockets,
                idle_timeout: Duration::from_millis(config.gateway_keep_alive_ms),
            },
            sockets: Arc::new(Semaphore::new(permits)),
            body_limit: config.mercato_body_limit_bytes,
            balance: Balance {
                strategy: Strategy::parse(&config.gateway_lb_strategy)
                    .unwrap_or(Strategy::PowerOfTwo),
                health_interval: Duration::from_millis(config.gateway_health_interval_ms),
                eject_after: config.gateway_eject_after.max(1),
                eject_for: Duration::from_millis(config.gateway_eject_ms),
            },
        }
    }
}

/// One replica's base URL, split for building requests.
#[derive(Debug)]
struct Replica {
    /// Names its connections among every replica of the process.
    id: u64,
    url: String,
    /// `host:port`, to connect to.
    address: String,
    /// Its `Host` header.
    host: HeaderValue,
    prefix: String,
    /// Requests sent and not yet answered in full.
    outstanding: Arc<AtomicUsize>,
    /// Failures in a row.
    failures: AtomicU32,
    /// Until when (epoch ms) it is left out.
    ejected_until_ms: AtomicU64,
}

impl Replica {
    fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL `{url}`: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(format!("URL `{url}` needs a scheme and a host"));
        };
        if scheme != &Scheme::HTTP {
            return Err(format!("URL `{url}`: only http:// upstreams are supported"));
        }
        static IDS: AtomicU64 = AtomicU64::new(0);
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|e| format!("URL `{url}`: {e}"))?;
        Ok(Self {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            url: url.trim_end_matches('/').to_owned(),
            address: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            host,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            outstanding: Arc::new(AtomicUsize::new(0)),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        })
    }

    fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now
    }

    /// Counts an answer: a failure in a row too many ejects the replica for a while; a
    /// success readmits it for good.
    fn observe(&self, failed: bool, balance: &Balance) {
        if !failed {
            self.failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= balance.eject_after {
            let until = now_ms()
                .saturating_add(u64::try_from(balance.eject_for.as_millis()).unwrap_or(u64::MAX));
            self.ejected_until_ms.store(until, Ordering::Relaxed);
            self.failures.store(0, Ordering::Relaxed);
            tracing::warn!(replica = %self.url, failures, eject_ms = balance.eject_for.as_millis() as u64, "replica ejected");
        }
    }

    /// The origin-form URI of `path_and_query` on this replica, under its path prefix.
    fn uri(&self, path_and_query: &PathAndQuery) -> Result<Uri, ProxyError> {
        if self.prefix.is_empty() {
            return Ok(Uri::from(path_and_query.clone()));
        }
        format!("{}{}", self.prefix, path_and_query)
            .parse()
            .map_err(|e| ProxyError::Upstream(format!("cannot build upstream URI: {e}")))
    }

    /// Sends `request` (origin-form URI) over one of this thread's connections to it.
    async fn send(&self, mut request: Request, pool: &Pool) -> Result<Answered, SendError> {
        // The client's `Host` is in `x-forwarded-host`.
        request
            .headers_mut()
            .insert(header::HOST, self.host.clone());
        connections::send(self.id, &self.address, request, &pool.connections).await
    }
}

/// The replicas of one remote service and its round-robin cursor.
pub(super) struct Remote {
    pool: Pool,
    replicas: Vec<Replica>,
    next: AtomicUsize,
}

impl Remote {
    /// Replicas at `urls`; unusable URLs are logged and left out.
    pub(super) fn new(service: &'static str, urls: &[String], pool: Pool) -> Self {
        let replicas = urls
            .iter()
            .filter_map(|url| match Replica::parse(url) {
                Ok(replica) => Some(replica),
                Err(error) => {
                    tracing::error!(service, %error, "replica left out");
                    None
                }
            })
            .collect();
        Self {
            pool,
            replicas,
            next: AtomicUsize::new(0),
        }
    }

    /// Asks every replica's `/health` every `GATEWAY_HEALTH_INTERVAL_MS`, for as long as
    /// the gateway holds this service: a replica that does not answer 2xx is left out until
    /// one that does.
    pub(super) fn spawn_health_checks(self: &Arc<Self>) {
        let interval = self.pool.balance.health_interval;
        if interval.is_zero() || self.replicas.is_empty() {
            return;
        }
        // A gateway built outside a runtime (a unit test) has no checker.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let remote = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(remote) = remote.upgrade() else {
                    return;
                };
                remote.check_health(interval).await;
            }
        });
    }

    async fn check_health(&self, interval: Duration) {
        let timeout = interval.min(Duration::from_secs(2));
        let checks = self.replicas.iter().map(|replica| async move {
            let answer =
                tokio::time::timeout(timeout, self.get(replica, "/health", 64 * 1024)).await;
            let healthy = matches!(answer, Ok(Ok((status, _))) if status.is_success());
            (replica, healthy)
        });
        let now = now_ms();
        for (replica, healthy) in futures::future::join_all(checks).await {
            let ejected = replica.is_ejected(now);
            if healthy && ejected {
                replica.ejected_until_ms.store(0, Ordering::Relaxed);
                replica.failures.store(0, Ordering::Relaxed);
                tracing::info!(replica = %replica.url, "replica readmitted by its health check");
            } else if !healthy {
                // Out until a later check finds it healthy.
                let until = now.saturating_add(
                    u64::try_from(interval.as_millis())
                        .unwrap_or(u64::MAX)
                        .saturating_mul(2),
                );
                replica.ejected_until_ms.store(until, Ordering::Relaxed);
                if !ejected {
                    tracing::warn!(replica = %replica.url, "replica ejected by its health check");
                }
            }
        }
    }

    /// The replica to try first: among those not ejected (all, when every one is), by the
    /// configured strategy.
    fn pick(&self) -> usize {
        if self.replicas.len() == 1 {
            return 0;
        }
        let now = now_ms();
        let healthy: Vec<usize> = (0..self.replicas.len())
            .filter(|&i| !self.replicas[i].is_ejected(now))
            .collect();
        let candidates: Vec<usize> = if healthy.is_empty() {
            (0..self.replicas.len()).collect()
        } else {
            healthy
        };
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let load = |i: usize| self.replicas[i].outstanding.load(Ordering::Relaxed);
        match self.pool.balance.strategy {
            Strategy::RoundRobin => candidates[turn % candidates.len()],
            Strategy::LeastOutstanding => {
                // Ties go round the candidates, so idle replicas share the load.
                let n = candidates.len();
                (0..n)
                    .map(|k| candidates[(turn + k) % n])
                    .min_by_key(|&i| load(i))
                    .unwrap_or(candidates[0])
            }
            Strategy::PowerOfTwo => {
                let n = candidates.len();
                let a = candidates[rand::random_range(0..n)];
                let b = candidates[rand::random_range(0..n)];
                if load(b) < load(a) { b } else { a }
            }
        }
    }

    /// Sends `request` to the replica the strategy picks, and once more to the next replica
    /// when the first fails without an answer: an idempotent request after any such failure,
    /// a write carrying an `Idempotency-Key` only when no connection was made (the upstream
    /// never saw it), any other write never. Replicas failing `GATEWAY_EJECT_AFTER` times in
    /// a row are left out for `GATEWAY_EJECT_MS`.
    pub(super) async fn send(&self, request: Request) -> Result<Response, ProxyError> {
        if self.replicas.is_empty() {
            return Err(ProxyError::NoReplica);
        }
        let permit = self
            .pool
            .sockets
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ProxyError::Upstream("connection pool closed".to_owned()))?;
        let (mut parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or(PathAndQuery::from_static("/"));
        let body_is_empty = body.size_hint().exact() == Some(0);
        let idempotent = is_idempotent(&parts.method);
        let keyed_write = !idempotent && parts.headers.contains_key("idempotency-key");
        // A body that may be sent twice is read first, so it can be.
        let (buffered, mut body) = if keyed_write || (idempotent && !body_is_empty) {
            match Limited::new(body, self.pool.body_limit).collect().await {
                Ok(collected) => (Some(collected.to_bytes()), None),
                Err(error) if error.is::<LengthLimitError>() => {
                    return Err(ProxyError::BodyTooLarge(self.pool.body_limit));
                }
                Err(error) => {
                    return Err(ProxyError::Upstream(format!(
                        "reading the request body: {error}"
                    )));
                }
            }
        } else {
            (
                None,
                Some(Body::new(Limited::new(body, self.pool.body_limit))),
            )
        };
        let attempts = if idempotent || keyed_write {
            self.replicas.len().min(2)
        } else {
            1
        };
        let start = self.pick();
        let mut failure = ProxyError::NoReplica;
        for attempt in 0..attempts {
            let replica = &self.replicas[start.wrapping_add(attempt) % self.replicas.len()];
            let in_flight = InFlight::start(&replica.outstanding);
            let sent = match &buffered {
                Some(bytes) => Body::from(bytes.clone()),
                None => body.take().unwrap_or_default(),
            };
            let mut outgoing = Request::new(sent);
            *outgoing.method_mut() = parts.method.clone();
            *outgoing.uri_mut() = replica.uri(&path)?;
            // The last attempt takes the headers; an earlier one keeps them for the next.
            *outgoing.headers_mut() = if attempt + 1 == attempts {
                std::mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            match replica.send(outgoing, &self.pool).await {
                Ok(answered) => {
                    let failed = answered.response.status().is_server_error();
                    replica.observe(failed, &self.pool.balance);
                    return Ok(into_response(answered, permit, in_flight));
                }
                Err(error) => {
                    failure = classify(error, self.pool.body_limit, &replica.url);
                    if matches!(failure, ProxyError::Connect(_) | ProxyError::Upstream(_)) {
                        replica.observe(true, &self.pool.balance);
                    }
                }
            }
            let again = match failure {
                ProxyError::Connect(_) => true,
                // The upstream may have acted on it: only a request meant to be repeatable
                // goes again.
                ProxyError::Upstream(_) => idempotent,
                ProxyError::BodyTooLarge(_) | ProxyError::NoReplica => false,
            };
            if !again {
                break;
            }
        }
        Err(failure)
    }

    /// GETs `path` from every replica, concurrently.
    pub(super) async fn probe_each(
        &self,
        path: &'static str,
        limit: usize,
        timeout: Duration,
    ) -> Vec<Probe> {
        let probes = self
            .replicas
            .iter()
            .map(|replica| probe(replica.url.clone(), timeout, self.get(replica, path, limit)));
        futures::future::join_all(probes).await
    }

    /// GETs `path` from the next replica.
    pub(super) async fn probe_one(
        &self,
        path: &'static str,
        limit: usize,
        timeout: Duration,
    ) -> Probe {
        if self.replicas.is_empty() {
            let outcome = Err(ProxyError::NoReplica.to_string());
            return Probe {
                target: "none".to_owned(),
                latency: Duration::ZERO,
                outcome,
            };
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let replica = &self.replicas[start % self.replicas.len()];
        probe(replica.url.clone(), timeout, self.get(replica, path, limit)).await
    }

    async fn get(
        &self,
        replica: &Replica,
        path: &'static str,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), String> {
        let uri = replica
            .uri(&PathAndQuery::from_static(path))
            .map_err(|e| e.to_string())?;
        let request = Request::get(uri)
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let response = replica
            .send(request, &self.pool)
            .await
            .map_err(|e| match e {
                SendError::Connect(reason) => reason,
                SendError::Upstream(error) => error_chain(&error),
            })?
            .response;
        read_limited(response.status(), response.into_body(), limit).await
    }
}

/// Methods whose repetition has the effect of one request (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn classify(error: SendError, body_limit: usize, replica: &str) -> ProxyError {
    let error = match error {
        SendError::Connect(reason) => {
            tracing::warn!(replica, error = %reason, "cannot connect to the upstream");
            return ProxyError::Connect(replica.to_owned());
        }
        SendError::Upstream(error) => error,
    };
    // The client's body over the limit surfaces as the request body's error.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if cause.is::<LengthLimitError>() {
            return ProxyError::BodyTooLarge(body_limit);
        }
        source = cause.source();
    }
    let chain = error_chain(&error);
    tracing::warn!(replica, error = %chain, "upstream request failed");
    ProxyError::Upstream(chain)
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The answer for the client; the connection slot and the replica's count are held until
/// its body is read, unless that came whole with the head.
fn into_response(
    answered: Answered,
    permit: OwnedSemaphorePermit,
    in_flight: InFlight,
) -> Response {
    let (mut parts, body) = answered.response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if answered.whole {
        return Response::from_parts(parts, body);
    }
    Response::from_parts(
        parts,
        Body::new(Permitted {
            inner: body,
            _permit: permit,
            _in_flight: in_flight,
        }),
    )
}

/// Counts a request in its replica's outstanding ones until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body holding its connection slot (and its place among the replica's
/// outstanding requests) until it is read to the end or dropped.
struct Permitted {
    inner: Body,
    _permit: OwnedSemaphorePermit,
    _in_flight: InFlight,
}

impl hyper::body::Body for Permitted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_urls_keep_their_path_prefix() {
        let replica = Replica::parse("http://10.0.0.5:3009/base/").unwrap();
        let uri = replica
            .uri(&PathAndQuery::from_static("/api/v1/products?limit=2"))
            .unwrap();
        assert_eq!(uri, "/base/api/v1/products?limit=2");
        assert_eq!(replica.address, "10.0.0.5:3009");
        assert_eq!(replica.host, "10.0.0.5:3009");
        assert_eq!(
            Replica::parse("http://catalog").unwrap().address,
            "catalog:80"
        );
        assert!(Replica::parse("https://secure:1").is_err());
        assert!(Replica::parse("not a url").is_err());
    }

    #[test]
    fn only_idempotent_methods_are_repeated() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::PUT));
        assert!(is_idempotent(&Method::DELETE));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }
}
