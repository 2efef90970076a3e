//! What changes in the headers between the client's hop and the upstream's.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::Version;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::uri::{PathAndQuery, Scheme, Uri};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), besides
/// `proxy-*` and whatever `Connection` names.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
    .contains(&name)
        || name.as_str().starts_with("proxy-")
}

/// Removes the headers of one hop: the fixed list, `proxy-*`, and those `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one look at each name, nothing parsed or hashed.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let mut names: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    names.extend(headers.keys().filter(|name| is_hop_by_hop(name)).cloned());
    for name in names {
        headers.remove(name);
    }
}

/// Prepares a client's request for its upstream: hop headers out, `x-forwarded-*` and an
/// RFC 7239 `Forwarded` element for this hop in, a fresh set of extensions (only the peer
/// address passes), and the forwarded path. Earlier hops' entries are kept as the client sent
/// them: only the last one, the gateway's, is to be trusted.
pub(crate) fn prepare(request: Request, path_and_query: PathAndQuery) -> Request {
    let (mut parts, body) = request.into_parts();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned();
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    strip_hop_by_hop(&mut parts.headers);
    if let Some(ConnectInfo(addr)) = peer {
        // Append the peer to the chain: the right-most entry is the one the gateway vouches for.
        let chain = match parts
            .headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
        {
            Some(previous) if !previous.trim().is_empty() => format!("{previous}, {}", addr.ip()),
            _ => addr.ip().to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            parts.headers.insert(X_FORWARDED_FOR, value);
        }
    }
    let proto = if parts.uri.scheme() == Some(&Scheme::HTTPS) {
        "https"
    } else {
        "http"
    };
    parts
        .headers
        .insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    let element = forwarded_element(peer.map(|ConnectInfo(addr)| addr), proto, host.as_ref());
    let chain = match parts.headers.get(&FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(previous) if !previous.trim().is_empty() => format!("{previous}, {element}"),
        _ => element,
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        parts.headers.insert(FORWARDED, value);
    }
    match host {
        Some(host) => parts.headers.insert(X_FORWARDED_HOST, host),
        None => parts.headers.remove(X_FORWARDED_HOST),
    };
    // A request arriving without a (valid) trace context starts one here, so every service's
    // logs of it share one trace id; a valid one passes unchanged.
    let traced = parts
        .headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_traceparent);
    if !traced {
        parts.headers.remove(&TRACEPARENT);
        if let Ok(value) = HeaderValue::from_str(&new_traceparent()) {
            parts.headers.insert(TRACEPARENT, value);
        }
    }
    let mut outgoing = Request::new(body);
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = Uri::from(path_and_query);
    *outgoing.version_mut() = Version::HTTP_11;
    *outgoing.headers_mut() = parts.headers;
    if let Some(peer) = peer {
        outgoing.extensions_mut().insert(peer);
    }
    outgoing
}

/// This hop's `Forwarded` element: `for=…;proto=…;host=…` (RFC 7239 §4), with IPv6
/// addresses and hosts quoted since `[`, `:` are not token characters.
fn forwarded_element(peer: Option<SocketAddr>, proto: &str, host: Option<&HeaderValue>) -> String {
    let mut element = match peer.map(|addr| addr.ip()) {
        Some(std::net::IpAddr::V4(ip)) => format!("for={ip}"),
        Some(std::net::IpAddr::V6(ip)) => format!("for=\"[{ip}]\""),
        None => "for=unknown".to_owned(),
    };
    element.push_str(";proto=");
    element.push_str(proto);
    let host = host
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.contains(['"', '\\']));
    if let Some(host) = host {
        element.push_str(";host=\"");
        element.push_str(host);
        element.push('"');
    }
    element
}

/// Whether `value` is a W3C trace context of version 00: `00-<32 hex>-<16 hex>-<2 hex>`, with
/// neither id all zeros.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    matches!(parts.as_slice(), [version, trace, parent, flags]
        if *version == "00"
            && hex(trace, 32)
            && hex(parent, 16)
            && hex(flags, 2)
            && trace.bytes().any(|b| b != b'0')
            && parent.bytes().any(|b| b != b'0'))
}

/// A fresh sampled trace context.
fn new_traceparent() -> String {
    let trace: u128 = rand::random::<u128>().max(1);
    let span: u64 = rand::random::<u64>().max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[test]
    fn a_valid_trace_context_passes_and_a_missing_or_broken_one_is_started() {
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let traced = Request::get("/x")
            .header("traceparent", given)
            .body(Body::empty())
            .unwrap();
        let out = prepare(traced, PathAndQuery::from_static("/x"));
        assert_eq!(out.headers()["traceparent"], given);
        for broken in [
            None,
            Some("00-zz-1-01"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ] {
            let mut request = Request::get("/x");
            if let Some(value) = broken {
                request = request.header("traceparent", value);
            }
            let out = prepare(
                request.body(Body::empty()).unwrap(),
                PathAndQuery::from_static("/x"),
            );
            let started = out.headers()["traceparent"].to_str().unwrap();
            assert!(is_traceparent(started), "{started}");
            assert_ne!(Some(started), broken);
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::ACCEPT));
    }

    #[test]
    fn forwarded_headers_name_the_peer_and_the_host() {
        let mut request = Request::get("/api/things?x=1")
            .header(header::HOST, "shop.example")
            .header("x-forwarded-for", "10.0.0.1")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 7], 4000))));
        let out = prepare(request, PathAndQuery::from_static("/api/v1/things?x=1"));
        assert_eq!(out.uri(), "/api/v1/things?x=1");
        assert_eq!(out.headers()["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(out.headers()["x-forwarded-proto"], "http");
        assert_eq!(out.headers()["x-forwarded-host"], "shop.example");
        assert_eq!(
            out.headers()["forwarded"],
            "for=192.0.2.7;proto=http;host=\"shop.example\""
        );
        assert!(out.extensions().get::<ConnectInfo<SocketAddr>>().is_some());
    }

    #[test]
    fn the_forwarded_chain_gets_this_hop_appended_with_ipv6_quoted() {
        let mut request = Request::get("/x")
            .header(header::HOST, "shop.example:8443")
            .header("forwarded", "for=198.51.100.17;proto=https")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((
                [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1],
                4000,
            ))));
        let out = prepare(request, PathAndQuery::from_static("/x"));
        assert_eq!(
            out.headers()["forwarded"],
            "for=198.51.100.17;proto=https, for=\"[2001:db8::1]\";proto=http;host=\"shop.example:8443\""
        );
    }

    #[test]
    fn without_a_peer_the_forwarded_chain_is_left_alone() {
        let request = Request::get("/x")
            .header("x-forwarded-for", "10.0.0.1")
            .body(Body::empty())
            .unwrap();
        let out = prepare(request, PathAndQuery::from_static("/x"));
        assert_eq!(out.headers()["x-forwarded-for"], "10.0.0.1");
        assert!(!out.headers().contains_key("x-forwarded-host"));
    }
}
