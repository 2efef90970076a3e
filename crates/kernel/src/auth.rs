//! Access tokens: claims, roles, verification against a JWKS, and the axum extractors.
//!
//! Identity signs short-lived EdDSA (Ed25519) JWTs and publishes its public keys as a JWKS;
//! every service verifies tokens locally with an [`Authenticator`]. The HTTP stack puts an
//! `Arc<Authenticator>` into the request extensions (`axum::Extension`), and handlers take
//! the caller as an extractor parameter:
//!
//! ```ignore
//! async fn list_orders(claims: Claims) -> … {}                 // any signed-in caller
//! async fn refund(RequireRole(claims, _): RequireRole<Staff>) -> … {}   // staff or admin
//! async fn projects(org: OrgScope) -> … {}                     // caller acting for an org
//! async fn product(MaybeClaims(caller): MaybeClaims) -> … {}   // public, personalised if signed in
//! ```
//!
//! Rejections are problem+json: 401 `unauthorized` (no token), `invalid_token` or
//! `token_expired`, each with a `WWW-Authenticate: Bearer` challenge; 403 `forbidden` (role
//! missing) or `organization_required`.

mod api_keys;
mod extract;
pub mod testing;
mod verify;

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub use api_keys::{
    API_KEY_PREFIX, ApiKeyResolver, DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_TTL, HttpApiKeyResolver,
    INTROSPECT_PATH, ResolveFuture, Scope, hash_api_key,
};
pub use extract::{Admin, MaybeClaims, OrgScope, RequireRole, RoleMarker, Staff, bearer_token};
pub use verify::{
    Authenticator, DEFAULT_REFRESH_INTERVAL, LEEWAY_SECONDS, MIN_SERVICE_SECRET_BYTES,
    SERVICE_KEY_ID, SERVICE_ROLE, SERVICE_TOKEN_LIFETIME,
};

/// 32 random bytes for [`Authenticator::set_service_secret`], for a process whose services
/// all share one verifier (`mercato up`, tests).
pub fn random_service_secret() -> Result<[u8; 32], AuthError> {
    let mut secret = [0; 32];
    aws_lc_rs::rand::fill(&mut secret)
        .map_err(|_| AuthError::KeySet("the system random generator failed".into()))?;
    Ok(secret)
}

/// The claims of a Mercato access token, or of an API key resolved by identity.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user (or service account) the token was issued to, e.g. `usr_…`.
    pub sub: String,
    /// Platform roles: `customer`, `staff`, `admin`; unknown names are kept and ignored.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The organization the caller acts for, e.g. `org_…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issuer, checked when `MERCATO_JWT_ISSUER` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Token id (for an API key: the key's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Scopes of an API key (`read`, `write`, `admin`); empty for a user's token, which has
    /// no scope restriction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

impl Claims {
    /// Whether the caller holds `role`: admin includes staff, and every caller is a customer.
    pub fn has_role(&self, role: Role) -> bool {
        let holds = |name: &str| self.roles.iter().any(|r| r == name);
        match role {
            Role::Customer => true,
            Role::Staff => holds(Role::Staff.as_str()) || holds(Role::Admin.as_str()),
            Role::Admin => holds(Role::Admin.as_str()),
        }
    }

    /// Whether the caller may act with `scope`: always for a user's token (no scopes), else
    /// when one of the key's scopes implies it (`admin` ⊇ `write` ⊇ `read`).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.is_empty()
            || self
                .scopes
                .iter()
                .filter_map(|s| Scope::parse(s))
                .any(|held| held.implies(scope))
    }
}

/// A platform role; organization roles (`owner`, `admin`, `member`) live in identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Any authenticated caller.
    Customer,
    /// Merchant staff: back-office operations.
    Staff,
    /// Platform administrator; implies staff.
    Admin,
}

impl Role {
    /// The role's name in tokens: `customer`, `staff` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Staff => "staff",
            Self::Admin => "admin",
        }
    }

    /// The role of this name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "customer" => Some(Self::Customer),
            "staff" => Some(Self::Staff),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was not authenticated or not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing bearer token")]
    MissingToken,
    /// An `Authorization` header that is not `Bearer <token>`.
    #[error("authorization header is not a bearer token")]
    MalformedHeader,
    /// Not a JWT, or a header or payload that does not decode.
    #[error("malformed token")]
    Malformed,
    /// Signed with anything but EdDSA (including `none` and HMAC).
    #[error("token algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// No `kid`, or a `kid` the key set does not hold.
    #[error("token was signed by an unknown key")]
    UnknownKey,
    /// The signature does not match the token.
    #[error("token signature is invalid")]
    InvalidSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("token has the wrong issuer")]
    WrongIssuer,
    /// Required claims are missing or have the wrong type.
    #[error("token claims are invalid")]
    InvalidClaims,
    /// An API key that is unknown, revoked or expired, or whose owner is disabled.
    #[error("api key is invalid")]
    InvalidApiKey,
    /// An API key without the scope the request needs.
    #[error("api key lacks the {0} scope")]
    InsufficientScope(Scope),
    /// Identity could not be asked about an API key.
    #[error("cannot check the api key now")]
    IdentityUnavailable,
    /// Authenticated, but without the role the route requires.
    #[error("requires the {0} role")]
    MissingRole(Role),
    /// Authenticated, but not acting for an organization.
    #[error("requires a token scoped to an organization")]
    NoOrganization,
    /// No `Arc<Authenticator>` in the request extensions: a server setup bug.
    #[error("no authenticator in the request extensions")]
    NotConfigured,
    /// The key set could not be read or parsed.
    #[error("cannot load the key set: {0}")]
    KeySet(String),
}

impl AuthError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingRole(_) | Self::NoOrganization | Self::InsufficientScope(_) => {
                StatusCode::FORBIDDEN
            }
            Self::IdentityUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotConfigured | Self::KeySet(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The stable problem code clients can switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "unauthorized",
            Self::Expired => "token_expired",
            Self::MissingRole(_) => "forbidden",
            Self::NoOrganization => "organization_required",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::IdentityUnavailable => "service_unavailable",
            Self::NotConfigured | Self::KeySet(_) => "internal_error",
            _ => "invalid_token",
        }
    }

    /// The `WWW-Authenticate` challenge of a 401 or 403 (RFC 6750 §3).
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken => Some("Bearer"),
            Self::MissingRole(_) | Self::InsufficientScope(_) => {
                Some("Bearer error=\"insufficient_scope\"")
            }
            _ if self.status() == StatusCode::UNAUTHORIZED => {
                Some("Bearer error=\"invalid_token\"")
            }
            _ => None,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err.status() {
            StatusCode::INTERNAL_SERVER_ERROR => ApiError::internal(err),
            status => ApiError::new(status, err.code(), Cow::Owned(err.to_string())),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let challenge = self.challenge();
        let mut response = ApiError::from(self).into_response();
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(roles: &[&str]) -> Claims {
        testing::claims("usr_1", roles, None)
    }

    #[test]
    fn admin_implies_staff_and_everyone_is_a_customer() {
        let admin = claims(&["admin"]);
        assert!(admin.has_role(Role::Admin) && admin.has_role(Role::Staff));
        let staff = claims(&["staff"]);
        assert!(staff.has_role(Role::Staff) && !staff.has_role(Role::Admin));
        let nobody = claims(&[]);
        assert!(nobody.has_role(Role::Customer) && !nobody.has_role(Role::Staff));
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in [Role::Customer, Role::Staff, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("owner"), None);
    }

    #[test]
    fn optional_claims_are_omitted_when_absent() {
        let json = serde_json::to_value(claims(&["staff"])).unwrap();
        assert!(json.get("org").is_none() && json.get("nbf").is_none());
        let back: Claims =
            serde_json::from_value(serde_json::json!({"sub": "usr_1", "exp": 2, "iat": 1}))
                .unwrap();
        assert!(back.roles.is_empty());
    }

    #[test]
    fn errors_map_to_problem_codes_and_challenges() {
        let expired = AuthError::Expired.into_response();
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            expired.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(ApiError::from(AuthError::Expired).code(), "token_expired");
        assert_eq!(
            ApiError::from(AuthError::UnknownKey).code(),
            "invalid_token"
        );
        let missing = AuthError::MissingToken.into_response();
        assert_eq!(missing.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let forbidden = ApiError::from(AuthError::MissingRole(Role::Staff));
        assert_eq!(
            (forbidden.status(), forbidden.code()),
            (StatusCode::FORBIDDEN, "forbidden")
        );
        let setup = AuthError::NotConfigured.into_response();
        assert_eq!(setup.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(setup.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
