//! One HTTP/1.1 exchange at a time with an upstream, over one connection: the request head
//! written as it goes on the wire, the answer's head parsed by `httparse`, its body read from
//! the socket by whoever polls it.
//!
//! A proxy asks little of its client side: one request at a time per connection, no
//! upgrades, no pipelining, no redirects. Doing that much inline, in the task that serves the
//! client, spares the task, the channels and the wake-ups a general-purpose client puts between
//! the two; on loopback they cost as much as the rest of the gateway's own work.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Version, request};
use bytes::{Buf, Bytes, BytesMut};
use futures::FutureExt as _;
use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// An answer's head may not be larger (hyper's server default is about as much).
const MAX_HEAD: usize = 64 * 1024;
/// Headers an answer may carry.
const MAX_HEADERS: usize = 100;
/// A chunk-size or trailer line may not be longer.
const MAX_LINE: usize = 4 * 1024;
/// Headers the gateway may add to an answer (request id, security headers, `Vary`) without
/// the map growing.
const HEADROOM: usize = 8;
/// Room made in the read buffer before each read.
const READ_SIZE: usize = 16 * 1024;
/// Bodies up to this size are copied out of the read buffer, which then stays whole for the
/// next answer; larger ones are split off without a copy.
const COPY_BELOW: usize = 4 * 1024;
/// Request bytes gathered before a write.
const WRITE_BATCH: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ExchangeError {
    /// The client's body could not be read (too large, or the client went away).
    #[error("reading the request body: {0}")]
    Request(#[source] axum::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The upstream broke the protocol.
    #[error("invalid answer from the upstream: {0}")]
    Invalid(String),
    #[error("the request body does not match its length")]
    RequestLength,
}

/// How an answer's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked transfer coding, in this state.
    Chunked(Chunk),
    /// Everything until the upstream closes the connection.
    Close,
}

/// Where a chunked body's reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
    Done,
}

impl Framing {
    /// Whether the body has been read to its end.
    pub(super) fn is_done(self) -> bool {
        matches!(self, Framing::Length(0) | Framing::Chunked(Chunk::Done))
    }
}

/// An answer's head, and how its body is framed.
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
    pub(super) framing: Framing,
    /// Whether the connection can carry another request once the body is read.
    pub(super) reusable: bool,
}

/// A connection to an upstream and what was read from it and not yet consumed.
pub(super) struct Connection {
    stream: TcpStream,
    buffer: BytesMut,
    /// Where requests are put together, kept from one to the next.
    out: Vec<u8>,
}

impl Connection {
    pub(super) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: BytesMut::new(),
            out: Vec::new(),
        }
    }

    /// Whether the upstream closed this idle connection (or sent on it unasked, which makes it
    /// as unusable). Looks at the reactor's readiness first: an idle, open connection costs
    /// no system call.
    pub(super) fn is_closed(&self) -> bool {
        if !self.buffer.is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Ok(_) => true,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        }
    }

    /// Writes `parts` and `body` as an HTTP/1.1 request, with the body's own framing: its
    /// length when known, chunked otherwise. A body ready at once goes in the head's write.
    pub(super) async fn write_request(
        &mut self,
        parts: &request::Parts,
        mut body: Body,
    ) -> Result<(), ExchangeError> {
        let length = body.size_hint().exact();
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        encode_head(parts, length, &mut out);
        let mut sent: u64 = 0;
        loop {
            let frame = match body.frame().now_or_never() {
                Some(frame) => frame,
                None => {
                    // The client is slow: what is gathered goes now, the rest when it comes.
                    self.write(&mut out).await?;
                    body.frame().await
                }
            };
            let data = match frame {
                None => break,
                Some(Err(error)) => return Err(ExchangeError::Request(error)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    // Empty data and trailers: nothing goes on the wire.
                    _ => continue,
                },
            };
            sent += data.len() as u64;
            if length.is_some_and(|length| sent > length) {
                return Err(ExchangeError::RequestLength);
            }
            if length.is_none() {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            }
            if out.len() + data.len() <= WRITE_BATCH {
                out.extend_from_slice(&data);
            } else {
                self.write(&mut out).await?;
                self.stream.write_all(&data).await?;
            }
            if length.is_none() {
                out.extend_from_slice(b"\r\n");
            }
        }
        match length {
            None => out.extend_from_slice(b"0\r\n\r\n"),
            Some(length) if sent != length => return Err(ExchangeError::RequestLength),
            Some(_) => {}
        }
        self.write(&mut out).await?;
        self.out = out;
        Ok(())
    }

    async fn write(&mut self, out: &mut Vec<u8>) -> Result<(), ExchangeError> {
        if !out.is_empty() {
            self.stream.write_all(out).await?;
            out.clear();
        }
        Ok(())
    }

    /// Reads the final answer's head to `method`, passing over interim (1xx) answers.
    pub(super) async fn read_head(&mut self, method: &Method) -> Result<Head, ExchangeError> {
        loop {
            if let Some(head) = self.parse_head(method)? {
                return Ok(head);
            }
            if self.buffer.len() >= MAX_HEAD {
                return Err(invalid(format!("head over {MAX_HEAD} bytes")));
            }
            let read = std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the upstream closed the connection before answering",
                )
                .into());
            }
        }
    }

    /// The final head at the start of the buffer, once all of it is there.
    fn parse_head(&mut self, method: &Method) -> Result<Option<Head>, ExchangeError> {
        loop {
            let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut response,
                &self.buffer,
                &mut slots,
            );
            let length = match parsed {
                Ok(httparse::Status::Complete(length)) => length,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(error) => return Err(invalid(error.to_string())),
            };
            let code = response.code.unwrap_or_default();
            let status =
                StatusCode::from_u16(code).map_err(|_| invalid(format!("status code {code}")))?;
            let version = if response.version == Some(0) {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            };
            // Where each header's name and value are in the head, so that they can be slices
            // of it once it is split off, not copies.
            let base = self.buffer.as_ptr() as usize;
            let offset = |field: &[u8]| (field.as_ptr() as usize).wrapping_sub(base);
            let mut fields = [(0usize, 0usize, 0usize, 0usize); MAX_HEADERS];
            let count = response.headers.len();
            for (slot, field) in fields.iter_mut().zip(response.headers.iter()) {
                let name = field.name.as_bytes();
                *slot = (
                    offset(name),
                    name.len(),
                    offset(field.value),
                    field.value.len(),
                );
            }
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(invalid("protocol upgrades are not proxied".to_owned()));
            }
            let head = self.buffer.split_to(length).freeze();
            if status.is_informational() {
                // `100 Continue` and the like: the final answer follows.
                continue;
            }
            let mut headers = HeaderMap::with_capacity(count + HEADROOM);
            for &(name_at, name_len, value_at, value_len) in &fields[..count] {
                let (Some(name), Some(value)) = (
                    head.get(name_at..name_at.saturating_add(name_len)),
                    head.get(value_at..value_at.saturating_add(value_len)),
                ) else {
                    return Err(invalid("header out of its head".to_owned()));
                };
                let name = HeaderName::from_bytes(name).map_err(|_| {
                    invalid(format!("header name `{}`", String::from_utf8_lossy(name)))
                })?;
                let value = if value.is_empty() {
                    HeaderValue::from_static("")
                } else {
                    HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
                        .map_err(|_| invalid(format!("value of header `{name}`")))?
                };
                headers.append(name, value);
            }
            let framing = framing(method, status, &mut headers)?;
            let reusable = version == Version::HTTP_11
                && framing != Framing::Close
                && !has_token(&headers, &header::CONNECTION, "close");
            return Ok(Some(Head {
                status,
                version,
                headers,
                framing,
                reusable,
            }));
        }
    }

    /// The whole body when it is already in the buffer (the usual small answer), leaving
    /// `framing` done.
    pub(super) fn take_whole_body(&mut self, framing: &mut Framing) -> Option<Bytes> {
        match *framing {
            Framing::Length(length) if length <= self.buffer.len() as u64 => {
                *framing = Framing::Length(0);
                Some(self.take(length as usize))
            }
            _ => None,
        }
    }

    fn take(&mut self, length: usize) -> Bytes {
        if length <= COPY_BELOW {
            let bytes = Bytes::copy_from_slice(&self.buffer[..length]);
            self.buffer.advance(length);
            bytes
        } else {
            self.buffer.split_to(length).freeze()
        }
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buffer.capacity() - self.buffer.len() < READ_SIZE / 4 {
            self.buffer.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buffer)
    }

    /// Reads more of the body into the buffer; the end of the stream is an error.
    fn poll_fill_body(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(self.poll_fill(cx))? {
            0 => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the upstream closed the connection before the end of the body",
            ))),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// The next piece of the body framed by `framing`, which it moves along; `None` at the end.
    pub(super) fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        framing: &mut Framing,
    ) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match *framing {
                Framing::Length(0) | Framing::Chunked(Chunk::Done) => return Poll::Ready(None),
                Framing::Length(left) => {
                    if self.buffer.is_empty() {
                        ready!(self.poll_fill_body(cx))?;
                    }
                    let length = left.min(self.buffer.len() as u64);
                    *framing = Framing::Length(left - length);
                    return Poll::Ready(Some(Ok(self.take(length as usize))));
                }
                Framing::Close => {
                    if self.buffer.is_empty() && ready!(self.poll_fill(cx))? == 0 {
                        return Poll::Ready(None);
                    }
                    let length = self.buffer.len();
                    return Poll::Ready(Some(Ok(self.take(length))));
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    if self.buffer.is_empty() {
                        ready!(self.poll_fill_body(cx))?;
                    }
                    let length = left.min(self.buffer.len() as u64);
                    *framing = match left - length {
                        0 => Framing::Chunked(Chunk::DataEnd),
                        left => Framing::Chunked(Chunk::Data(left)),
                    };
                    return Poll::Ready(Some(Ok(self.take(length as usize))));
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if self.buffer.len() < 2 {
                        ready!(self.poll_fill_body(cx))?;
                        continue;
                    }
                    if &self.buffer[..2] != b"\r\n" {
                        return Poll::Ready(Some(Err(bad_chunk("no CRLF after a chunk"))));
                    }
                    self.buffer.advance(2);
                    *framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(&self.buffer) {
                    Ok(httparse::Status::Complete((line, size))) => {
                        self.buffer.advance(line);
                        *framing = Framing::Chunked(match size {
                            0 => Chunk::Trailers,
                            size => Chunk::Data(size),
                        });
                    }
                    Ok(httparse::Status::Partial) if self.buffer.len() <= MAX_LINE => {
                        ready!(self.poll_fill_body(cx))?;
                    }
                    _ => return Poll::Ready(Some(Err(bad_chunk("bad chunk size line")))),
                },
                Framing::Chunked(Chunk::Trailers) => {
                    let Some(end) = self.buffer.iter().position(|&b| b == b'\n') else {
                        if self.buffer.len() > MAX_LINE {
                            return Poll::Ready(Some(Err(bad_chunk("trailer line too long"))));
                        }
                        ready!(self.poll_fill_body(cx))?;
                        continue;
                    };
                    // Trailers are not forwarded; an empty line ends them.
                    let line = self.buffer.split_to(end + 1);
                    if line.trim_ascii().is_empty() {
                        *framing = Framing::Chunked(Chunk::Done);
                    }
                }
            }
        }
    }
}

fn invalid(reason: String) -> ExchangeError {
    ExchangeError::Invalid(reason)
}

fn bad_chunk(reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid chunked body from the upstream: {reason}"),
    )
}

/// Writes the request line and headers; the body's framing headers come from its `length`,
/// not from what the client sent.
fn encode_head(parts: &request::Parts, length: Option<u64>, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        // The gateway reads the client's body itself: it never waits for `100 Continue`.
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Some(0) if !expects_body(&parts.method) => {}
        Some(length) => out.extend_from_slice(format!("content-length: {length}\r\n").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

/// Methods whose requests usually carry a body: an empty one is still given a length.
fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// How the body of an answer with this status and these headers ends; a `Content-Length`
/// that a transfer coding overrides is removed, as it would be wrong once decoded.
fn framing(
    method: &Method,
    status: StatusCode,
    headers: &mut HeaderMap,
) -> Result<Framing, ExchangeError> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Length(0));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .rfind(|coding| !coding.is_empty());
        // Only a chunked last coding ends the message by itself.
        return Ok(match last {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Framing::Chunked(Chunk::Size),
            _ => Framing::Close,
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let parsed = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| invalid("Content-Length".to_owned()))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(invalid("conflicting Content-Length values".to_owned()));
        }
        length = Some(parsed);
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// Whether a comma-separated header holds `token`.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;

    /// A connection whose upstream sends `answer` once it has read the request head, and
    /// what it read.
    async fn exchange(
        request: axum::http::Request<Body>,
        answer: &'static [u8],
    ) -> (Result<(Head, Vec<Bytes>), ExchangeError>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let upstream = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            socket.write_all(answer).await.unwrap();
            socket.shutdown().await.unwrap();
            // What follows the head (a body) arrives until the client stops writing.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), async {
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await;
            seen
        });
        let mut connection = Connection::new(TcpStream::connect(address).await.unwrap());
        let method = request.method().clone();
        let (parts, body) = request.into_parts();
        let result = async {
            connection.write_request(&parts, body).await?;
            let mut head = connection.read_head(&method).await?;
            let mut pieces = Vec::new();
            while let Some(piece) =
                std::future::poll_fn(|cx| connection.poll_body(cx, &mut head.framing)).await
            {
                pieces.push(piece?);
            }
            Ok((head, pieces))
        }
        .await;
        drop(connection);
        (result, upstream.await.unwrap())
    }

    fn joined(pieces: &[Bytes]) -> String {
        pieces
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect::<String>()
    }

    #[tokio::test]
    async fn a_get_goes_out_without_framing_and_its_sized_answer_is_read() {
        let request = axum::http::Request::get("/api/v1/products?limit=2")
            .header("x-request-id", "r1")
            .header("content-length", "0")
            .body(Body::empty())
            .unwrap();
        let (result, seen) = exchange(
            request,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\n{}",
        )
        .await;
        let (head, pieces) = result.unwrap();
        assert_eq!(
            String::from_utf8(seen).unwrap(),
            "GET /api/v1/products?limit=2 HTTP/1.1\r\nx-request-id: r1\r\n\r\n"
        );
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.reusable);
        assert_eq!(head.headers["content-type"], "application/json");
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(joined(&pieces), "{}");
    }

    #[tokio::test]
    async fn a_streamed_body_goes_chunked_and_a_chunked_answer_is_decoded() {
        let stream = futures::stream::iter([
            Ok::<_, std::io::Error>(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ]);
        let request = axum::http::Request::post("/echo")
            .header("expect", "100-continue")
            .body(Body::from_stream(stream))
            .unwrap();
        let (result, seen) = exchange(
            request,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
        )
        .await;
        let (head, pieces) = result.unwrap();
        assert_eq!(
            String::from_utf8(seen).unwrap(),
            "POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
        );
        assert_eq!(head.status, StatusCode::CREATED);
        assert!(!head.headers.contains_key("content-length"));
        assert_eq!(head.framing, Framing::Chunked(Chunk::Done));
        assert_eq!(joined(&pieces), "hello world");
    }

    #[tokio::test]
    async fn an_answer_without_length_runs_to_the_close_and_is_not_reused() {
        let request = axum::http::Request::put("/x")
            .body(Body::from("abc"))
            .unwrap();
        let (result, seen) = exchange(request, b"HTTP/1.0 200 OK\r\n\r\nall of it").await;
        let (head, pieces) = result.unwrap();
        assert!(
            String::from_utf8(seen)
                .unwrap()
                .ends_with("content-length: 3\r\n\r\nabc")
        );
        assert_eq!(head.version, Version::HTTP_10);
        assert!(!head.reusable);
        assert_eq!(joined(&pieces), "all of it");
    }

    #[tokio::test]
    async fn broken_answers_are_errors() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Le",
        ] {
            let answer: &'static [u8] = Box::leak(answer.to_vec().into_boxed_slice());
            let request = axum::http::Request::get("/").body(Body::empty()).unwrap();
            let (result, _) = exchange(request, answer).await;
            assert!(
                result.is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    #[tokio::test]
    async fn a_head_answer_has_no_body_whatever_its_length() {
        let request = axum::http::Request::head("/").body(Body::empty()).unwrap();
        let (result, _) =
            exchange(request, b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n").await;
        let (head, pieces) = result.unwrap();
        assert!(head.framing.is_done());
        assert!(pieces.is_empty());
        assert!(head.reusable);
    }
}
