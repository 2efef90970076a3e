//! The route table: which service a request goes to, with which path, and who may pass.
//!
//! Built in: `/api/v1/<segment>/…` goes to the service owning `<segment>` (`/api/<segment>/…`
//! is an alias of the latest version), `/.well-known/…` to identity and `/admin/mail` to
//! notifications. `[[gateway_routes]]` tables of `mercato.toml` come first: the longest
//! prefix matching the path (at a segment boundary) and the method wins; a route may rewrite
//! the prefix and require a signed-in caller or a role at the edge.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::http::uri::PathAndQuery;
use axum::http::{Method, StatusCode, Uri};
use mercato_kernel::auth::Role;
use mercato_kernel::{ApiError, GatewayRoute, ServiceInfo};

/// The latest API version; unversioned paths are its alias.
pub(crate) const LATEST: &str = "v1";

/// Who may pass the edge on a route; the services still check every request themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EdgeAuth {
    /// Anyone: the service decides.
    Public,
    /// A valid access token or API key.
    User,
    /// A caller holding this role.
    Role(Role),
}

impl EdgeAuth {
    fn parse(name: Option<&str>) -> Result<Self, String> {
        match name.map(str::trim) {
            None | Some("" | "public") => Ok(Self::Public),
            Some("user") => Ok(Self::User),
            Some("staff") => Ok(Self::Role(Role::Staff)),
            Some("admin") => Ok(Self::Role(Role::Admin)),
            Some(other) => Err(format!(
                "auth `{other}` is not public, user, staff or admin"
            )),
        }
    }
}

/// One configured route, checked.
#[derive(Debug)]
struct Route {
    prefix: String,
    methods: Vec<Method>,
    service: &'static str,
    rewrite: Option<String>,
    auth: EdgeAuth,
    /// Its name in metrics: the prefix, `/` for the root.
    label: Arc<str>,
}

impl Route {
    fn parse(route: &GatewayRoute, services: &Services) -> Result<Self, String> {
        let prefix = route.prefix.trim();
        let what = || format!("route `{prefix}`");
        if !prefix.starts_with('/') || prefix.contains(['?', '#']) || prefix.contains("//") {
            return Err(format!(
                "{}: the prefix must be a path like /api/v1/shop",
                what()
            ));
        }
        let service = services
            .named(route.service.trim())
            .ok_or_else(|| format!("{}: no service is named `{}`", what(), route.service))?;
        let methods = route
            .methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("{}: `{m}` is not an HTTP method", what()))
            })
            .collect::<Result<_, _>>()?;
        let rewrite = match route.rewrite.as_deref().map(str::trim) {
            None => None,
            Some(r) if r.starts_with('/') && !r.contains(['?', '#']) => {
                Some(r.trim_end_matches('/').to_owned())
            }
            Some(r) => {
                return Err(format!(
                    "{}: rewrite `{r}` must be a path like /api/v1/products",
                    what()
                ));
            }
        };
        let prefix = if prefix == "/" {
            String::new()
        } else {
            prefix.trim_end_matches('/').to_owned()
        };
        Ok(Self {
            label: Arc::from(if prefix.is_empty() {
                "/"
            } else {
                prefix.as_str()
            }),
            prefix,
            methods,
            service,
            rewrite,
            auth: EdgeAuth::parse(route.auth.as_deref()).map_err(|e| format!("{}: {e}", what()))?,
        })
    }

    /// The rest of `path` after the prefix, when the prefix matches at a segment boundary.
    fn rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The service owning it.
    pub(crate) service: &'static str,
    /// The first segment after `/api/v1/` of the forwarded path (the cache's route group).
    pub(crate) segment: Cow<'static, str>,
    /// The path and query sent upstream.
    pub(crate) forward: PathAndQuery,
    /// Who may pass.
    pub(crate) auth: EdgeAuth,
    /// The route it matched, for metrics and logs (`/api/v1/products`).
    pub(crate) route: Arc<str>,
}

/// The services routes may name: those the gateway was given, then the platform's catalog
/// (a known service that is not running answers 503 rather than 404).
#[derive(Debug, Default)]
struct Services {
    /// Service name and route label by the path segment it owns, of the services given.
    by_segment: HashMap<&'static str, (&'static str, Arc<str>)>,
    names: Vec<&'static str>,
}

impl Services {
    fn new(given: &[&'static ServiceInfo]) -> Self {
        let mut by_segment = HashMap::new();
        for info in given {
            for &prefix in info.prefixes {
                let label = Arc::from(format!("/api/{LATEST}/{prefix}"));
                if let Some((previous, _)) = by_segment.insert(prefix, (info.name, label)) {
                    tracing::warn!(
                        prefix,
                        previous,
                        now = info.name,
                        "prefix routed twice; the last wins"
                    );
                }
            }
        }
        Self {
            by_segment,
            names: given.iter().map(|info| info.name).collect(),
        }
    }

    fn named(&self, name: &str) -> Option<&'static str> {
        self.names.iter().copied().find(|n| *n == name).or_else(|| {
            ServiceInfo::find(name)
                .filter(|info| info.name != "gateway")
                .map(|info| info.name)
        })
    }

    fn owning(&self, segment: &str) -> Option<&'static str> {
        self.by_segment
            .get(segment)
            .map(|(name, _)| *name)
            .or_else(|| {
                ServiceInfo::owning(segment)
                    .filter(|info| info.name != "gateway")
                    .map(|info| info.name)
            })
    }
}

/// The gateway's routes.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    /// Configured routes, longest prefix first.
    configured: Vec<Route>,
    services: Services,
}

impl RouteTable {
    /// The table with `routes` ahead of the built-in ones of `services` (and of the
    /// platform's catalog); any malformed route is an error.
    pub(crate) fn new(
        routes: &[GatewayRoute],
        services: &[&'static ServiceInfo],
    ) -> Result<Self, String> {
        let services = Services::new(services);
        let mut configured = routes
            .iter()
            .map(|route| Route::parse(route, &services))
            .collect::<Result<Vec<_>, _>>()?;
        // Longest first; among equal prefixes, method-specific routes before catch-alls.
        configured.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.methods.is_empty().cmp(&b.methods.is_empty()))
        });
        Ok(Self {
            configured,
            services,
        })
    }

    /// The built-in route of a normalized path: its service, cache group and route label
    /// (shared, not built per request, for the services given).
    fn builtin(&self, path: &str) -> Option<(&'static str, Cow<'static, str>, Arc<str>)> {
        let segment = api_segment(path);
        if !segment.is_empty() {
            if let Some((key, (service, label))) = self.services.by_segment.get_key_value(segment) {
                return Some((service, Cow::Borrowed(*key), label.clone()));
            }
            let service = self.services.owning(segment)?;
            let label = Arc::from(format!("/api/{LATEST}/{segment}"));
            return Some((service, Cow::Owned(segment.to_owned()), label));
        }
        if path == "/.well-known" || path.starts_with("/.well-known/") {
            let service = self.services.owning(WELL_KNOWN)?;
            return Some((service, Cow::Borrowed(""), Arc::from("/.well-known")));
        }
        if path == "/admin/mail" {
            let service = self.services.named("notifications")?;
            return Some((service, Cow::Borrowed(""), Arc::from("/admin/mail")));
        }
        None
    }

    /// Where `method uri` goes, or the 404 problem saying why nothing serves it.
    pub(crate) fn resolve(&self, method: &Method, uri: &Uri) -> Result<Resolved, ApiError> {
        let path = normalize(uri.path())?;
        let not_found = || route_not_found(uri.path());
        let configured = self.configured.iter().find_map(|route| {
            let rest = route.rest(&path)?;
            (route.methods.is_empty() || route.methods.contains(method)).then_some((route, rest))
        });
        if let Some((route, rest)) = configured {
            let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            let forwarded = match &route.rewrite {
                Some(rewrite) => format!("{rewrite}{rest}"),
                None => path.clone().into_owned(),
            };
            let forwarded = if forwarded.is_empty() {
                "/".to_owned()
            } else {
                forwarded
            };
            return Ok(Resolved {
                service: route.service,
                segment: Cow::Owned(api_segment(&forwarded).to_owned()),
                forward: format!("{forwarded}{query}")
                    .parse()
                    .map_err(|_| not_found())?,
                auth: route.auth,
                route: route.label.clone(),
            });
        }
        let (service, segment, route) = self.builtin(&path).ok_or_else(not_found)?;
        // A path already spelled with its version goes on as it came (no copy).
        let forward = match (&path, uri.path_and_query()) {
            (Cow::Borrowed(_), Some(original)) => original.clone(),
            _ => {
                let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                format!("{path}{query}").parse().map_err(|_| not_found())?
            }
        };
        Ok(Resolved {
            service,
            segment,
            forward,
            auth: EdgeAuth::Public,
            route,
        })
    }
}

/// `/api/<segment>/…` spelled with the latest version; other versions are refused.
fn normalize(path: &str) -> Result<Cow<'_, str>, ApiError> {
    let Some(rest) = path.strip_prefix("/api/") else {
        return Ok(Cow::Borrowed(path));
    };
    let first = rest.split('/').next().unwrap_or_default();
    let is_version =
        first.len() > 1 && first.starts_with('v') && first[1..].bytes().all(|b| b.is_ascii_digit());
    if !is_version {
        return Ok(Cow::Owned(format!("/api/{LATEST}/{rest}")));
    }
    if first != LATEST {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("API version {first} does not exist; the latest is {LATEST}"),
        ));
    }
    Ok(Cow::Borrowed(path))
}

/// The first segment after `/api/v1/`, or "".
fn api_segment(path: &str) -> &str {
    path.strip_prefix("/api/")
        .and_then(|rest| rest.strip_prefix(LATEST))
        .and_then(|rest| rest.strip_prefix('/'))
        .map_or("", |rest| rest.split('/').next().unwrap_or_default())
}

/// Segment under which a service claims `/.well-known/…`.
const WELL_KNOWN: &str = ".well-known";

/// The 404 problem for a path nothing serves, as the kernel's fallback words it.
pub(crate) fn route_not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route for {path}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prefix, service, methods, rewrite, auth.
    type Spec<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        Option<&'a str>,
        Option<&'a str>,
    );

    fn table(routes: &[Spec<'_>]) -> RouteTable {
        let routes: Vec<GatewayRoute> = routes
            .iter()
            .map(|(prefix, service, methods, rewrite, auth)| GatewayRoute {
                prefix: (*prefix).to_owned(),
                service: (*service).to_owned(),
                methods: methods.iter().map(|m| (*m).to_owned()).collect(),
                rewrite: rewrite.map(str::to_owned),
                auth: auth.map(str::to_owned),
            })
            .collect();
        RouteTable::new(&routes, &[]).unwrap()
    }

    fn resolved(table: &RouteTable, method: Method, uri: &'static str) -> Result<Resolved, u16> {
        table
            .resolve(&method, &Uri::from_static(uri))
            .map_err(|e| e.status().as_u16())
    }

    #[test]
    fn versioned_paths_are_forwarded_unchanged() {
        let r = resolved(
            &RouteTable::default(),
            Method::GET,
            "/api/v1/orders/ord_1?expand=lines",
        )
        .unwrap();
        assert_eq!(r.service, "orders");
        assert_eq!(r.forward, "/api/v1/orders/ord_1?expand=lines");
        assert_eq!(&*r.route, "/api/v1/orders");
        assert_eq!(r.auth, EdgeAuth::Public);
    }

    #[test]
    fn unversioned_paths_alias_the_latest_version() {
        let r = resolved(
            &RouteTable::default(),
            Method::GET,
            "/api/products/prd_1?limit=2",
        )
        .unwrap();
        assert_eq!(r.service, "catalog");
        assert_eq!(r.segment, "products");
        assert_eq!(r.forward, "/api/v1/products/prd_1?limit=2");
    }

    #[test]
    fn unknown_versions_segments_and_paths_are_not_found() {
        let t = RouteTable::default();
        assert_eq!(resolved(&t, Method::GET, "/api/v2/orders"), Err(404));
        assert_eq!(resolved(&t, Method::GET, "/api/v1"), Err(404));
        assert_eq!(resolved(&t, Method::GET, "/api/v1/"), Err(404));
        assert_eq!(resolved(&t, Method::GET, "/api/v1/nothing"), Err(404));
        assert_eq!(resolved(&t, Method::GET, "/elsewhere"), Err(404));
    }

    #[test]
    fn well_known_documents_and_the_mailbox_have_built_in_owners() {
        let t = RouteTable::default();
        let jwks = resolved(&t, Method::GET, "/.well-known/jwks.json").unwrap();
        assert_eq!(jwks.service, "identity");
        assert_eq!(jwks.forward, "/.well-known/jwks.json");
        let mail = resolved(&t, Method::GET, "/admin/mail?limit=5").unwrap();
        assert_eq!(mail.service, "notifications");
        assert_eq!(mail.forward, "/admin/mail?limit=5");
    }

    #[test]
    fn configured_routes_win_by_longest_prefix_and_method_and_may_rewrite() {
        let t = table(&[
            (
                "/api/v1/shop",
                "catalog",
                &["GET"],
                Some("/api/v1/products"),
                None,
            ),
            ("/api/v1/shop/admin", "catalog", &[], None, Some("staff")),
            ("/api/v1/orders", "orders", &[], None, Some("user")),
        ]);
        let shop = resolved(&t, Method::GET, "/api/shop/prd_1?x=1").unwrap();
        assert_eq!(shop.service, "catalog");
        assert_eq!(shop.forward, "/api/v1/products/prd_1?x=1");
        assert_eq!(shop.segment, "products");
        assert_eq!(&*shop.route, "/api/v1/shop");
        // The method does not match: no built-in route owns `shop` either.
        assert_eq!(resolved(&t, Method::POST, "/api/v1/shop"), Err(404));
        // A segment boundary, not a string prefix.
        assert_eq!(resolved(&t, Method::GET, "/api/v1/shopping"), Err(404));
        let admin = resolved(&t, Method::DELETE, "/api/v1/shop/admin/x").unwrap();
        assert_eq!(admin.auth, EdgeAuth::Role(Role::Staff));
        assert_eq!(admin.forward, "/api/v1/shop/admin/x");
        let orders = resolved(&t, Method::GET, "/api/v1/orders").unwrap();
        assert_eq!(orders.auth, EdgeAuth::User);
        // Built-in routes still serve everything else.
        let carts = resolved(&t, Method::POST, "/api/v1/carts").unwrap();
        assert_eq!(carts.service, "orders");
        assert_eq!(carts.auth, EdgeAuth::Public);
    }

    #[test]
    fn malformed_routes_are_refused_with_the_reason() {
        let bad = |prefix: &str,
                   service: &str,
                   method: &str,
                   rewrite: Option<&str>,
                   auth: Option<&str>| {
            RouteTable::new(
                &[GatewayRoute {
                    prefix: prefix.to_owned(),
                    service: service.to_owned(),
                    methods: vec![method.to_owned()],
                    rewrite: rewrite.map(str::to_owned),
                    auth: auth.map(str::to_owned),
                }],
                &[],
            )
            .unwrap_err()
        };
        assert!(bad("api", "catalog", "GET", None, None).contains("prefix"));
        assert!(bad("/x", "nope", "GET", None, None).contains("no service"));
        assert!(bad("/x", "gateway", "GET", None, None).contains("no service"));
        assert!(bad("/x", "catalog", "G E T", None, None).contains("HTTP method"));
        assert!(bad("/x", "catalog", "GET", Some("products"), None).contains("rewrite"));
        assert!(bad("/x", "catalog", "GET", None, Some("root")).contains("auth"));
    }
}
