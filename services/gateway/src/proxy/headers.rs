//! What changes in the headers between the client's hop and the upstream's.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};

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
    let proto = if parts.uri.scheme() == Some(&Scheme::HTTPS) {
        "https"
    } else {
        "http"
    };
    let hop = Hop {
        peer: peer.map(|ConnectInfo(addr)| addr.ip()),
        proto,
        host: host.clone(),
    };
    let (for_this_hop, forwarded) = hop.values();
    if let Some(for_this_hop) = for_this_hop {
        // Append the peer to the chain: the right-most entry is the one the gateway vouches for.
        let chain = match parts.headers.get(&X_FORWARDED_FOR) {
            Some(previous) => append(previous, &for_this_hop),
            None => Some(for_this_hop),
        };
        if let Some(chain) = chain {
            parts.headers.insert(X_FORWARDED_FOR, chain);
        }
    }
    parts
        .headers
        .insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    let chain = match parts.headers.get(&FORWARDED) {
        Some(previous) => append(previous, &forwarded),
        None => Some(forwarded),
    };
    if let Some(chain) = chain {
        parts.headers.insert(FORWARDED, chain);
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
        parts.headers.insert(TRACEPARENT, new_traceparent());
    }
    let mut outgoing = Request::new(body);
    *outgoing.method_mut() = parts.method;
    *outgoing.uri_mut() = Uri::from(path_and_query);
    *outgoing.version_mut() = Version::HTTP_11;
    *outgoing.headers_mut() = parts.headers;
    // Emptied rather than replaced: the map the client's request allocated is used again.
    let mut extensions = parts.extensions;
    extensions.clear();
    if let Some(peer) = peer {
        extensions.insert(peer);
    }
    *outgoing.extensions_mut() = extensions;
    outgoing
}

/// `previous, this`, or `this` alone when `previous` is blank or not text.
fn append(previous: &HeaderValue, this: &HeaderValue) -> Option<HeaderValue> {
    let previous = previous.to_str().map_or("", str::trim);
    if previous.is_empty() {
        return Some(this.clone());
    }
    let this = this.to_str().ok()?;
    HeaderValue::from_str(&format!("{previous}, {this}")).ok()
}

/// What this hop adds to the forwarding headers.
#[derive(PartialEq)]
struct Hop {
    peer: Option<IpAddr>,
    proto: &'static str,
    host: Option<HeaderValue>,
}

thread_local! {
    /// The last hop's values: the requests a thread serves mostly come from the client (or
    /// the load balancer) of the request before, and formatting them was a good part of the
    /// gateway's own work on a request.
    static LAST_HOP: RefCell<Option<(Hop, Option<HeaderValue>, HeaderValue)>> =
        const { RefCell::new(None) };
}

impl Hop {
    /// This hop's `X-Forwarded-For` entry (none without a peer) and `Forwarded` element.
    fn values(self) -> (Option<HeaderValue>, HeaderValue) {
        LAST_HOP.with_borrow_mut(|last| match last {
            Some((hop, for_this_hop, forwarded)) if *hop == self => {
                (for_this_hop.clone(), forwarded.clone())
            }
            _ => {
                let for_this_hop = self
                    .peer
                    .and_then(|ip| HeaderValue::from_str(&ip.to_string()).ok());
                let forwarded = self.forwarded_element();
                *last = Some((self, for_this_hop.clone(), forwarded.clone()));
                (for_this_hop, forwarded)
            }
        })
    }

    /// This hop's `Forwarded` element: `for=…;proto=…;host=…` (RFC 7239 §4), with IPv6
    /// addresses and hosts quoted since `[`, `:` are not token characters.
    fn forwarded_element(&self) -> HeaderValue {
        let mut element = match self.peer {
            Some(IpAddr::V4(ip)) => format!("for={ip}"),
            Some(IpAddr::V6(ip)) => format!("for=\"[{ip}]\""),
            None => "for=unknown".to_owned(),
        };
        element.push_str(";proto=");
        element.push_str(self.proto);
        let host = self
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.contains(['"', '\\']));
        if let Some(host) = host {
            element.push_str(";host=\"");
            element.push_str(host);
            element.push('"');
        }
        HeaderValue::from_str(&element).unwrap_or(HeaderValue::from_static("for=unknown"))
    }
}

/// Whether `value` is a W3C trace context of version 00: `00-<32 hex>-<16 hex>-<2 hex>`, with
/// neither id all zeros.
fn is_traceparent(value: &str) -> bool {
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let mut parts = value.trim().split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0')
}

/// A fresh sampled trace context: `00-<trace id>-<span id>-01`.
fn new_traceparent() -> HeaderValue {
    let mut ids: [u8; 24] = rand::random();
    // Neither id may be all zeros.
    ids[15] |= 1;
    ids[23] |= 1;
    let mut text = *b"00-________________________________-________________-01";
    // Hex digits always fit their slots and are valid header characters.
    let _ = hex::encode_to_slice(&ids[..16], &mut text[3..35]);
    let _ = hex::encode_to_slice(&ids[16..], &mut text[36..52]);
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(
        "00-00000000000000000000000000000001-0000000000000001-01",
    ))
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

    #[test]
    fn each_request_names_its_own_peer_and_host_after_another_one() {
        let forwarded = |ip: [u8; 4], host: &str| {
            let mut request = Request::get("/x")
                .header("host", host)
                .body(Body::empty())
                .unwrap();
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from((ip, 4000))));
            let out = prepare(request, PathAndQuery::from_static("/x"));
            let value = |name: &str| out.headers()[name].to_str().unwrap().to_owned();
            (value("x-forwarded-for"), value("forwarded"))
        };
        for _ in 0..2 {
            assert_eq!(
                forwarded([192, 0, 2, 1], "a.example"),
                (
                    "192.0.2.1".to_owned(),
                    "for=192.0.2.1;proto=http;host=\"a.example\"".to_owned()
                )
            );
            assert_eq!(forwarded([192, 0, 2, 2], "a.example").0, "192.0.2.2");
            assert_eq!(
                forwarded([192, 0, 2, 2], "b.example").1,
                "for=192.0.2.2;proto=http;host=\"b.example\""
            );
        }
    }
}
