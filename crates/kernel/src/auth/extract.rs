//! axum extractors for the caller: [`Claims`], [`MaybeClaims`], [`RequireRole`], [`OrgScope`].

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::{AuthError, Authenticator, Claims, Role, Scope};

/// The bearer token of an `Authorization` header: `None` without the header, an error when
/// the header is not `Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AuthError::MalformedHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MalformedHeader);
    }
    Ok(Some(token))
}

fn authenticator(parts: &Parts) -> Result<Arc<Authenticator>, AuthError> {
    parts
        .extensions
        .get::<Arc<Authenticator>>()
        .cloned()
        .ok_or(AuthError::NotConfigured)
}

/// The caller's claims, if a credential is sent; an API key must also hold the scope the
/// request's method needs.
async fn optional_claims(parts: &Parts) -> Result<Option<Claims>, AuthError> {
    let auth = authenticator(parts)?;
    let Some(token) = bearer_token(&parts.headers)? else {
        return Ok(None);
    };
    let claims = auth.authenticate(token).await?;
    let needed = Scope::for_method(&parts.method);
    if !claims.allows(needed) {
        return Err(AuthError::InsufficientScope(needed));
    }
    Ok(Some(claims))
}

/// The verified claims of the `Authorization: Bearer` token (a JWT or an `mk_…` API key);
/// 401 without a valid one, 403 for an API key lacking the method's scope.
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        optional_claims(parts).await?.ok_or(AuthError::MissingToken)
    }
}

/// The caller's claims when a token is sent; `None` without one, still 401 for a bad one.
#[derive(Debug, Clone, PartialEq)]
pub struct MaybeClaims(pub Option<Claims>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeClaims {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        optional_claims(parts).await.map(MaybeClaims)
    }
}

/// A marker type naming the role a [`RequireRole`] extractor demands.
pub trait RoleMarker: Send + Sync + 'static {
    /// The role required.
    const ROLE: Role;
}

/// Marker for [`RequireRole`]: staff or admin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Staff;

impl RoleMarker for Staff {
    const ROLE: Role = Role::Staff;
}

/// Marker for [`RequireRole`]: admin only.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admin;

impl RoleMarker for Admin {
    const ROLE: Role = Role::Admin;
}

/// Claims of a caller holding role `R` (`RequireRole<Staff>`); 401 without a valid token,
/// 403 without the role.
#[derive(Debug, Clone)]
pub struct RequireRole<R>(pub Claims, pub PhantomData<R>);

impl<R> RequireRole<R> {
    /// The caller's claims.
    pub fn into_claims(self) -> Claims {
        self.0
    }
}

impl<R> Deref for RequireRole<R> {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<S: Send + Sync, R: RoleMarker> FromRequestParts<S> for RequireRole<R> {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = Claims::from_request_parts(parts, state).await?;
        if !claims.has_role(R::ROLE) {
            return Err(AuthError::MissingRole(R::ROLE));
        }
        Ok(Self(claims, PhantomData))
    }
}

/// A caller acting for an organization (the token's `org` claim); 403 without one.
///
/// Handlers filter every tenant query by `org_id`; another organization's id answers 404.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgScope {
    /// The organization the caller acts for.
    pub org_id: String,
    /// The caller's claims.
    pub claims: Claims,
}

impl<S: Send + Sync> FromRequestParts<S> for OrgScope {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = Claims::from_request_parts(parts, state).await?;
        match claims.org.clone().filter(|org| !org.is_empty()) {
            Some(org_id) => Ok(Self { org_id, claims }),
            None => Err(AuthError::NoOrganization),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(bearer_token(&HeaderMap::new()), Ok(None));
        assert_eq!(bearer_token(&headers("Bearer a.b.c")), Ok(Some("a.b.c")));
        assert_eq!(bearer_token(&headers("bearer  a.b.c ")), Ok(Some("a.b.c")));
    }

    #[test]
    fn other_authorization_schemes_are_malformed() {
        for value in [
            "Basic dXNlcjpwdw==",
            "Bearer",
            "Bearer ",
            "a.b.c",
            "Token a.b.c",
        ] {
            assert_eq!(
                bearer_token(&headers(value)),
                Err(AuthError::MalformedHeader),
                "{value}"
            );
        }
    }
}
