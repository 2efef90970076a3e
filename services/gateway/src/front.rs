//! The gateway's front door: the HTTP/1.1 server, and the way each request takes through it.
//!
//! API requests (`/api/…`) go to the proxy through the steps the router's layers take for
//! the others (request id, metrics and log line, panic guard, security headers, CORS,
//! compression, rate limits), as one future instead of a chain of boxed layers: they are
//! most of the gateway's traffic. Everything else (health, metrics, docs, assets, pages,
//! configured routes outside `/api/`) goes through the router.
//!
//! With several threads, each serves its share of the connections on a single-threaded
//! runtime, the way nginx runs a worker per core: a request, its upstream call (on a
//! connection of the same thread, see `proxy::connections`) and its answer never wake
//! another thread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use mercato_kernel::http::{Observation, panic_response, refuse_too_large};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::edge::Edge;
use crate::metrics::GatewayMetrics;

/// The whole gateway as one service: what [`serve`] answers with, and what the router of
/// [`crate::build`] hands every request to.
#[derive(Clone)]
pub struct Front(Arc<Inner>);

struct Inner {
    /// `/api/…`: the edge steps around rate limits and the proxy.
    api: Edge,
    /// Everything else, with the kernel's and the edge's layers.
    other: Router,
    metrics: Arc<GatewayMetrics>,
    body_limit: usize,
}

impl Front {
    pub(crate) fn new(
        api: Edge,
        other: Router,
        metrics: Arc<GatewayMetrics>,
        body_limit: usize,
    ) -> Self {
        Self(Arc::new(Inner {
            api,
            other,
            metrics,
            body_limit,
        }))
    }

    /// The answer to `request`.
    pub async fn handle(&self, request: Request) -> Response {
        if request.uri().path().starts_with("/api/") {
            self.api(request).await
        } else {
            match self.0.other.clone().oneshot(request).await {
                Ok(response) => response,
                Err(infallible) => match infallible {},
            }
        }
    }

    /// What `Stack::wrap` and `count_requests` do around the router, around the edge.
    async fn api(&self, mut request: Request) -> Response {
        let observation = Observation::start("gateway", &mut request);
        let response = match refuse_too_large(&request, self.0.body_limit) {
            Some(refused) => refused,
            None => {
                let answer = self.0.api.clone().oneshot(request);
                match AssertUnwindSafe(answer)
                    .catch_unwind()
                    .instrument(observation.span().clone())
                    .await
                {
                    Ok(Ok(response)) => response,
                    Ok(Err(infallible)) => match infallible {},
                    Err(panic) => panic_response(panic),
                }
            }
        };
        let response = observation.finish(response).await;
        self.0.metrics.count(response.status());
        response
    }
}

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let front = self.clone();
        Box::pin(async move { Ok(front.handle(request).await) })
    }
}

/// Serves `front` on `listener` until `shutdown` is cancelled, then lets the requests in
/// flight finish for up to `grace`. With `threads` above one, that many threads serve the
/// connections, each on its own single-threaded runtime; otherwise the calling runtime does.
pub async fn serve(
    listener: TcpListener,
    front: Front,
    threads: usize,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    if threads <= 1 {
        let graceful = GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => spawn_connection(stream, peer, &front, &graceful),
                    Err(error) => accept_failed(&error).await,
                },
                () = shutdown.cancelled() => break,
            }
        }
        drop(listener);
        drain(graceful, grace).await;
        return Ok(());
    }

    let mut workers = Vec::with_capacity(threads);
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads {
        let (connections, incoming) = mpsc::unbounded_channel();
        let (done, stopped) = oneshot::channel::<()>();
        let front = front.clone();
        std::thread::Builder::new()
            .name(format!("gateway-{index}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(work(incoming, front, grace)),
                    Err(error) => tracing::error!(%error, "cannot start a gateway thread"),
                }
                drop(done);
            })?;
        workers.push(connections);
        finished.push(stopped);
    }
    let mut turn = 0usize;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Handed over without its registration in this runtime, to be registered in the
        // worker's.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        if hand_over(&workers, &mut turn, (stream, peer)).is_err() {
            tracing::error!("every gateway thread has stopped");
            break;
        }
    }
    drop(listener);
    // Closing the channels tells the threads to finish their connections and stop.
    drop(workers);
    for stopped in finished {
        let _ = stopped.await;
    }
    Ok(())
}

/// Hands `connection` to the next thread in turn; a thread that is gone passes its turn on.
/// Gives it back when every thread is gone.
fn hand_over<T>(
    workers: &[mpsc::UnboundedSender<T>],
    turn: &mut usize,
    mut connection: T,
) -> Result<(), T> {
    for _ in 0..workers.len() {
        *turn = turn.wrapping_add(1);
        match workers[*turn % workers.len()].send(connection) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::SendError(back)) => connection = back,
        }
    }
    Err(connection)
}

/// One thread's share: the connections handed to it, until the acceptor stops.
async fn work(
    mut incoming: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    front: Front,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    while let Some((stream, peer)) = incoming.recv().await {
        match TcpStream::from_std(stream) {
            Ok(stream) => spawn_connection(stream, peer, &front, &graceful),
            Err(error) => tracing::warn!(%error, "cannot take over a connection"),
        }
    }
    drain(graceful, grace).await;
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    front: &Front,
    graceful: &GracefulShutdown,
) {
    // Answers go out as soon as they are written, not when a segment is full.
    let _ = stream.set_nodelay(true);
    let front = front.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let front = front.clone();
        async move {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            Ok::<_, Infallible>(front.handle(request).await)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, %peer, "client connection ended with an error");
        }
    });
}

/// Waits for the connections `graceful` watches to finish their requests, at most `grace`.
async fn drain(graceful: GracefulShutdown, grace: Duration) {
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "requests still running after the grace period; stopping"
            );
        }
    }
}

/// A connection reset before it was accepted is that client's loss; out of file descriptors
/// and the like, waiting a moment beats spinning on the error.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(%error, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_each_thread_in_turn_and_skip_stopped_ones() {
        let (a, mut a_rx) = mpsc::unbounded_channel();
        let (b, mut b_rx) = mpsc::unbounded_channel();
        let (c, c_rx) = mpsc::unbounded_channel();
        let workers = [a, b, c];
        let mut turn = 0;
        for connection in 0..6 {
            hand_over(&workers, &mut turn, connection).unwrap();
        }
        let got = |rx: &mut mpsc::UnboundedReceiver<i32>| {
            std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>()
        };
        assert_eq!(got(&mut a_rx), [2, 5]);
        assert_eq!(got(&mut b_rx), [0, 3]);

        drop(c_rx);
        for connection in 0..4 {
            hand_over(&workers, &mut turn, connection).unwrap();
        }
        assert_eq!(got(&mut a_rx).len() + got(&mut b_rx).len(), 4);

        drop((a_rx, b_rx));
        assert_eq!(hand_over(&workers, &mut turn, 9), Err(9));
    }
}
