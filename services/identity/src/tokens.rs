//! Access tokens: EdDSA (Ed25519) JWTs signed with keys identity generates and stores.
//!
//! The newest unretired key signs. [`TokenIssuer::rotate`] makes a new key and retires the
//! old ones; retired keys stay in the JWKS for the access-token lifetime plus the verifiers'
//! leeway, so tokens signed just before a rotation keep verifying until they expire.
//! Private keys are stored as PKCS#8 in the identity database (whose access is the secret).

use std::sync::{PoisonError, RwLock};

use anyhow::Context as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercato_kernel::auth::{Claims, LEEWAY_SECONDS};
use mercato_store::{Db, now_micros};

use crate::store::keys::{self, KeyRow};

/// Lifetime of an access token, in seconds.
pub const ACCESS_TOKEN_SECONDS: i64 = 15 * 60;
/// Issuer when `MERCATO_JWT_ISSUER` is unset.
pub const DEFAULT_ISSUER: &str = "mercato";

/// A signed access token and its lifetime.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

struct Signer {
    kid: String,
    key: EncodingKey,
}

struct KeyRing {
    signer: Signer,
    published: JwkSet,
}

/// Signs access tokens and keeps the signing keys.
pub struct TokenIssuer {
    issuer: String,
    ring: RwLock<KeyRing>,
}

impl TokenIssuer {
    /// Loads the stored keys, creating the first one when there is none.
    pub async fn load_or_create(db: &Db, issuer: Option<String>) -> anyhow::Result<Self> {
        let mut rows = keys::published(db, retired_cutoff()).await?;
        if !rows.iter().any(|k| k.retired_at.is_none()) {
            let mut tx = db.begin().await?;
            keys::insert(&mut tx, &generate()?).await?;
            tx.commit().await?;
            rows = keys::published(db, retired_cutoff()).await?;
        }
        Ok(Self {
            issuer: issuer.unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
            ring: RwLock::new(ring(&rows)?),
        })
    }

    /// An issuer with one fresh key held in memory only (benchmarks, unit tests).
    pub fn ephemeral(issuer: &str) -> anyhow::Result<Self> {
        Ok(Self {
            issuer: issuer.to_owned(),
            ring: RwLock::new(ring(&[generate()?])?),
        })
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public keys verifiers should trust.
    pub fn jwks(&self) -> JwkSet {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .published
            .clone()
    }

    /// The key id that signs new tokens.
    pub fn active_kid(&self) -> String {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .signer
            .kid
            .clone()
    }

    /// Re-reads the keys from the database (another replica may have rotated).
    pub async fn reload(&self, db: &Db) -> anyhow::Result<()> {
        let rows = keys::published(db, retired_cutoff()).await?;
        let ring = ring(&rows)?;
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = ring;
        Ok(())
    }

    /// Makes a new active key and retires the others; callers then hand [`Self::jwks`] to
    /// the process's verifier.
    pub async fn rotate(&self, db: &Db) -> anyhow::Result<()> {
        let key = generate()?;
        let mut tx = db.begin().await?;
        keys::retire_active(&mut tx, key.created_at).await?;
        keys::insert(&mut tx, &key).await?;
        tx.commit().await?;
        self.reload(db).await
    }

    /// Signs an access token for `sub` with `roles` and `org`.
    pub fn issue(
        &self,
        sub: &str,
        roles: Vec<String>,
        org: Option<String>,
    ) -> anyhow::Result<AccessToken> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            roles,
            org,
            exp: now + ACCESS_TOKEN_SECONDS,
            iat: now,
            nbf: None,
            iss: Some(self.issuer.clone()),
            jti: Some(mercato_kernel::id::new_id("jti")),
            ..Claims::default()
        };
        let ring = self.ring.read().unwrap_or_else(PoisonError::into_inner);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ring.signer.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &ring.signer.key)
            .context("signing an access token")?;
        Ok(AccessToken {
            token,
            expires_in: ACCESS_TOKEN_SECONDS,
        })
    }
}

/// The key set published at `/.well-known/jwks.json`, read from the database.
pub async fn published_jwks(db: &Db) -> anyhow::Result<JwkSet> {
    let rows = keys::published(db, retired_cutoff()).await?;
    Ok(JwkSet {
        keys: rows.iter().map(jwk).collect(),
    })
}

/// A fresh secret: `prefix` + 32 random bytes in base64url (43 characters).
pub fn random_secret(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Retired keys are published while tokens they signed may still verify.
fn retired_cutoff() -> i64 {
    let keep = ACCESS_TOKEN_SECONDS + i64::try_from(LEEWAY_SECONDS).unwrap_or(60);
    now_micros() - keep * 1_000_000
}

fn generate() -> anyhow::Result<KeyRow> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("generating an Ed25519 key failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("reading the generated Ed25519 key failed"))?;
    let mut id = [0u8; 8];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let created_at = now_micros();
    Ok(KeyRow {
        kid: format!("key_{}_{}", created_at / 1_000_000, hex::encode(id)),
        private_pkcs8: STANDARD.encode(pkcs8.as_ref()),
        public_key: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        created_at,
        retired_at: None,
    })
}

/// The key ring of stored keys, newest first: the newest unretired key signs.
fn ring(rows: &[KeyRow]) -> anyhow::Result<KeyRing> {
    let active = rows
        .iter()
        .find(|k| k.retired_at.is_none())
        .context("no active signing key")?;
    let der = STANDARD
        .decode(&active.private_pkcs8)
        .context("stored signing key is not base64")?;
    Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|_| anyhow::anyhow!("stored signing key {} is not Ed25519", active.kid))?;
    Ok(KeyRing {
        signer: Signer {
            kid: active.kid.clone(),
            key: EncodingKey::from_ed_der(&der),
        },
        published: JwkSet {
            keys: rows.iter().map(jwk).collect(),
        },
    })
}

fn jwk(key: &KeyRow) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(key.kid.clone()),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: key.public_key.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use mercato_kernel::auth::Authenticator;

    use super::*;

    #[tokio::test]
    async fn issued_tokens_verify_against_the_published_keys() {
        let issuer = TokenIssuer::ephemeral("mercato").unwrap();
        let token = issuer
            .issue("usr_1", vec!["customer".into()], None)
            .unwrap();
        let auth = Authenticator::from_jwks(issuer.jwks(), Some("mercato".into()));
        let claims = auth.verify(&token.token).await.unwrap();
        assert_eq!(claims.sub, "usr_1");
        assert_eq!(claims.iss.as_deref(), Some("mercato"));
        assert!(claims.jti.is_some());
        assert_eq!(claims.exp - claims.iat, ACCESS_TOKEN_SECONDS);
        let header = jsonwebtoken::decode_header(&token.token).unwrap();
        assert_eq!(header.kid, Some(issuer.active_kid()));
    }
}
