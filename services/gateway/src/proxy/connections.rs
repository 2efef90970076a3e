//! Keep-alive HTTP/1.1 connections to replicas, kept per thread.
//!
//! Each serving thread keeps its own idle connections, so that a request is written, and its
//! answer read, by the task that serves the client (see `h1`): no lock is taken and no other
//! task or thread is woken on the way (the gateway serves with one runtime per core, see
//! `front`). An idle connection the upstream has closed is left for a new one before the
//! request is written: the upstream never sees it, so even a write is safe to send that way.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::{Request, Response};

use super::h1::{Connection, ExchangeError, Framing};

/// Why a request got no answer.
#[derive(Debug)]
pub(super) enum SendError {
    /// No connection could be made: the upstream never saw the request.
    Connect(String),
    /// The exchange failed once the request may have been written.
    Upstream(ExchangeError),
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
    connection: Connection,
    since: Instant,
}

thread_local! {
    /// Idle connections of this thread, by replica id, the most recently used last.
    static IDLE: RefCell<HashMap<u64, Vec<Idle>>> = RefCell::new(HashMap::new());
}

/// A free connection of this thread to `replica`, dropping those closed or idle too long.
fn checkout(replica: u64, settings: &Settings) -> Option<Connection> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.get_mut(&replica)?;
        let now = Instant::now();
        // The oldest come first: once one is fresh enough, the rest are too.
        let stale = list
            .iter()
            .take_while(|c| now.duration_since(c.since) >= settings.idle_timeout)
            .count();
        list.drain(..stale);
        while let Some(idle) = list.pop() {
            if !idle.connection.is_closed() {
                return Some(idle.connection);
            }
        }
        None
    })
}

/// Keeps `connection` for the next request to `replica`, unless this thread holds enough.
fn checkin(replica: u64, connection: Connection, settings: &Settings) {
    if settings.max_idle == 0 {
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
            connection,
            since: Instant::now(),
        });
    });
}

async fn connect(address: &str, settings: &Settings) -> Result<Connection, SendError> {
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
    Ok(Connection::new(stream))
}

/// An upstream's answer.
pub(super) struct Answered {
    pub(super) response: Response<Body>,
    /// Whether the body came whole with the head: the connection is free already.
    pub(super) whole: bool,
}

/// Sends `request` (origin-form URI, `Host` set) to `address`, the replica numbered `replica`,
/// on an idle connection of this thread or a new one. The connection goes back to the idle
/// ones once the answer's body is read to the end (at once when it came with the head).
pub(super) async fn send(
    replica: u64,
    address: &str,
    request: Request<Body>,
    settings: &Settings,
) -> Result<Answered, SendError> {
    let mut connection = match checkout(replica, settings) {
        Some(connection) => connection,
        None => connect(address, settings).await?,
    };
    let (parts, body) = request.into_parts();
    connection
        .write_request(&parts, body)
        .await
        .map_err(SendError::Upstream)?;
    let mut head = connection
        .read_head(&parts.method)
        .await
        .map_err(SendError::Upstream)?;
    let whole = connection.take_whole_body(&mut head.framing);
    let answered = whole.is_some();
    let body = match whole {
        Some(whole) => {
            if head.reusable {
                checkin(replica, connection, settings);
            }
            Body::from(whole)
        }
        None => Body::new(Answer {
            connection: Some(connection),
            framing: head.framing,
            reusable: head.reusable,
            replica,
            settings: *settings,
        }),
    };
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.version_mut() = head.version;
    *response.headers_mut() = head.headers;
    Ok(Answered {
        response,
        whole: answered,
    })
}

/// An answer's body read from its connection as it is polled; the connection goes back to
/// the thread's idle ones at the end of the body, and closes if the body is dropped before.
struct Answer {
    connection: Option<Connection>,
    framing: Framing,
    reusable: bool,
    replica: u64,
    settings: Settings,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let Some(connection) = this.connection.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = connection.poll_body(cx, &mut this.framing);
        match &polled {
            Poll::Ready(Some(Ok(_))) if this.framing.is_done() => this.give_back(),
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.connection = None,
            _ => {}
        }
        polled.map(|piece| piece.map(|piece| piece.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.connection.is_none() || self.framing.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

impl Answer {
    fn give_back(&mut self) {
        if let Some(connection) = self.connection.take()
            && self.reusable
        {
            checkin(self.replica, connection, &self.settings);
        }
    }
}
