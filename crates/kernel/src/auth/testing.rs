//! Signing keys and tokens for tests of every service.
//!
//! ```ignore
//! let keys = TestKeys::generate();
//! let app = router.layer(axum::Extension(Arc::new(keys.authenticator())));
//! let token = keys.token_for("usr_1", &["staff"], Some("org_1"));
//! ```

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::{Authenticator, Claims};

/// How long tokens of [`TestKeys::token_for`] and [`claims`] stay valid.
pub const TOKEN_LIFETIME_SECONDS: i64 = 15 * 60;

/// An Ed25519 signing key with a random `kid`, as identity would hold.
#[derive(Clone)]
pub struct TestKeys {
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl fmt::Debug for TestKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TestKeys {
    /// A fresh key pair.
    pub fn generate() -> Self {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate an Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("read the generated key");
        let mut id = [0u8; 8];
        aws_lc_rs::rand::fill(&mut id).expect("random key id");
        Self {
            kid: format!("test-{}", hex::encode(id)),
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The key id tokens carry in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The public key as a JWK (`OKP`, `Ed25519`, `alg: EdDSA`, `use: sig`).
    pub fn jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                key_id: Some(self.kid.clone()),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(&self.public),
            }),
        }
    }

    /// A key set holding this key only.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk()],
        }
    }

    /// [`TestKeys::jwks`] as a JSON document.
    pub fn jwks_json(&self) -> String {
        serde_json::to_string(&self.jwks()).expect("serialize a JWKS")
    }

    /// An authenticator that trusts this key, with no issuer check.
    pub fn authenticator(&self) -> Authenticator {
        Authenticator::from_jwks(self.jwks(), None)
    }

    /// A token carrying `claims`, signed with EdDSA and this key's `kid`.
    pub fn token(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        self.sign(&header, claims)
    }

    /// A token for `sub` with `roles` and `org`, valid for 15 minutes.
    pub fn token_for(&self, sub: &str, roles: &[&str], org: Option<&str>) -> String {
        self.token(&claims(sub, roles, org))
    }

    /// Signs any payload under any header with this key (EdDSA), for tests of odd tokens.
    pub fn sign<T: Serialize>(&self, header: &Header, payload: &T) -> String {
        let key = EncodingKey::from_ed_der(&self.pkcs8);
        jsonwebtoken::encode(header, payload, &key).expect("sign a test token")
    }
}

/// Claims for `sub` with `roles` and `org`, issued now and valid for 15 minutes.
pub fn claims(sub: &str, roles: &[&str], org: Option<&str>) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: sub.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        org: org.map(str::to_owned),
        exp: now + TOKEN_LIFETIME_SECONDS,
        iat: now,
        nbf: None,
        iss: None,
        jti: None,
        scopes: Vec::new(),
    }
}
