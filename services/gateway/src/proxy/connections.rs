//! Keep-alive HTTP/1.1 connections to replicas, kept per thread.
//!
//! Each serving thread keeps its own idle connections, so that a request is written, and its
//! answer read, by the thread that serves the client: no lock is taken and no other thread is
//! woken on the way (the gateway serves with one runtime per core, see `front`). A request
//! that finds an idle connection closed before it was written goes on a new one: the upstream
//! never saw it, so even a write is safe to send again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Why a request got no answer.
#[derive(Debug)]
pub(super) enum SendError {
    /// No connection could be made: the upstream never saw the request.
    Connect(String),
    /// The connection failed once the request may have been written.
    Upstream(hyper::Error),
}

/// Settings shared by every replica's connections.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    /// How long a connection attempt may take.
    pub(super) connect_timeout: Duration,
    /// Idle connections kept per replica and thread.
    pub(super) max_idle: usize,
    /// How long an idle connection is kept.
    pub(super) idle_timeout: Duration,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

thread_local! {
    /// Idle connections of this thread, by replica id, the most recently used last.
    static IDLE: RefCell<HashMap<u64, Vec<Idle>>> = RefCell::new(HashMap::new());
}

/// A free connection of this thread to `replica`, dropping those closed or idle too long.
fn checkout(replica: u64, settings: &Settings) -> Option<SendRequest<Body>> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.get_mut(&replica)?;
        let now = Instant::now();
        // The oldest come first: once one is fresh enough, the rest are too.
        let stale = list
            .iter()
            .take_while(|c| now.duration_since(c.since) >= settings.idle_timeout)
            .count();
        list.drain(..stale);
        while let Some(connection) = list.pop() {
            if !connection.sender.is_closed() {
                return Some(connection.sender);
            }
        }
        None
    })
}

/// Keeps `sender` for the next request to `replica`, unless this thread holds enough.
fn checkin(replica: u64, sender: SendRequest<Body>, settings: &Settings) {
    if sender.is_closed() || settings.max_idle == 0 {
        return;
    }
    // A body dropped while its thread exits finds no list: the connection just closes.
    let _ = IDLE.try_with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(replica).or_default();
        if list.len() >= settings.max_idle {
            // The oldest goes: it is the likeliest to be closed by the upstream first.
            list.remove(0);
        }
        list.push(Idle {
            sender,
            since: Instant::now(),
        });
    });
}

async fn connect(address: &str, settings: &Settings) -> Result<SendRequest<Body>, SendError> {
    let stream = tokio::time::timeout(
        settings.connect_timeout,
        tokio::net::TcpStream::connect(address),
    )
    .await
    .map_err(|_| {
        SendError::Connect(format!(
            "cannot connect to {address} within {} ms",
            settings.connect_timeout.as_millis()
        ))
    })?
    .map_err(|e| SendError::Connect(format!("cannot connect to {address}: {e}")))?;
    // Small requests and answers go out at once rather than waiting to fill a segment.
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Connect(format!("cannot connect to {address}: {e}")))?;
    // Spawned on the current runtime: the thread serving the client drives its upstream.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream connection closed");
        }
    });
    sender
        .ready()
        .await
        .map_err(|e| SendError::Connect(format!("cannot connect to {address}: {e}")))?;
    Ok(sender)
}

/// Sends `request` (origin-form URI, `Host` set) to `address`, the replica numbered `replica`,
/// on an idle connection of this thread or a new one. The answer's body gives the connection
/// back once it is read to the end.
pub(super) async fn send(
    replica: u64,
    address: &str,
    mut request: Request<Body>,
    settings: &Settings,
) -> Result<Response<Body>, SendError> {
    loop {
        let (mut sender, reused) = match checkout(replica, settings) {
            Some(sender) => (sender, true),
            None => (connect(address, settings).await?, false),
        };
        if reused && sender.ready().await.is_err() {
            // Closed while idle; the request is still ours.
            continue;
        }
        match sender.try_send_request(request).await {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                let body = Body::new(Returning {
                    body,
                    sender: Some(sender),
                    replica,
                    settings: *settings,
                });
                return Ok(Response::from_parts(parts, body));
            }
            Err(mut error) => match error.take_message() {
                // Never written: an idle connection closed by the upstream a moment ago.
                Some(unsent) if reused => request = unsent,
                _ => return Err(SendError::Upstream(error.into_error())),
            },
        }
    }
}

/// An answer's body that returns its connection to the thread's idle ones when read to the
/// end; one dropped before that closes the connection, whose state is unknown.
struct Returning {
    body: Incoming,
    sender: Option<SendRequest<Body>>,
    replica: u64,
    settings: Settings,
}

impl Returning {
    fn give_back(&mut self) {
        if let Some(sender) = self.sender.take() {
            checkin(self.replica, sender, &self.settings);
        }
    }
}

impl hyper::body::Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.sender = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        // A body with nothing to read (a 204, a HEAD answer) is done without being polled.
        if self.body.is_end_stream() {
            self.give_back();
        }
    }
}
