//! What changes in the headers between the client's hop and the upstream's.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::Version;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::uri::{PathAndQuery, Scheme, Uri};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), besides
/// `proxy-*` and whatever `Connection` names.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes the headers of one hop: the fixed list, `proxy-*`, and those `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    let proxied: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxied {
        headers.remove(name);
    }
}

/// Prepares a client's request for its upstream: hop headers out, `x-forwarded-*` in, a fresh
/// set of extensions (only the peer address passes), and the forwarded path.
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
    match host {
        Some(host) => parts.headers.insert(X_FORWARDED_HOST, host),
        None => parts.headers.remove(X_FORWARDED_HOST),
    };
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

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

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
        assert!(out.extensions().get::<ConnectInfo<SocketAddr>>().is_some());
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
