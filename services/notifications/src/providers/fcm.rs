//! Push through Firebase Cloud Messaging HTTP v1 with a service account. An OAuth2 access token
//! comes from the account's `token_uri` (JWT bearer grant: an RS256 assertion signed with the
//! account's key) and is reused until a minute before it expires; then
//! `POST {base}/v1/projects/{project_id}/messages:send`. 404 (`UNREGISTERED`) and other 4xx are
//! permanent; 401 drops the token and is transient, like 429, 5xx and token failures.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercato_kernel::config::Secret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;
use url::Url;

use super::{
    Accepted, Message, Provider, SendError, http_base_url, http_client, post_form, refused,
    unreachable,
};

/// The OAuth2 scope FCM sends need.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The OAuth2 grant for a signed assertion (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is valid; Google accepts at most an hour.
const ASSERTION_LIFETIME: i64 = 3600;
/// A cached token is replaced this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// The FCM push provider.
pub struct Fcm {
    client: reqwest::Client,
    send_url: Url,
    token_url: Url,
    /// `token_uri` as the account file spells it: the assertion's audience.
    token_uri: String,
    client_email: String,
    key_id: Option<String>,
    key: EncodingKey,
    token: Mutex<Option<AccessToken>>,
}

/// The fields of a service-account file we use.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: Secret,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

/// The claims of the token request assertion.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Secret,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
}

fn default_expires_in() -> u64 {
    3600
}

/// An access token and when it stops working.
struct AccessToken {
    value: Secret,
    expires_at: Instant,
}

/// FCM's answer to a send.
#[derive(Deserialize)]
struct Sent {
    name: String,
}

impl Fcm {
    /// A provider for the service account `json` (the key file's content), sending through
    /// `api_base` (`https://fcm.googleapis.com`). Fails when the file is not a service account
    /// or its key cannot sign.
    pub fn from_service_account(
        json: &str,
        api_base: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let account: ServiceAccount = serde_json::from_str(json)
            .map_err(|e| anyhow::anyhow!("FCM service account is not usable: {e}"))?;
        anyhow::ensure!(
            !account.project_id.is_empty()
                && account
                    .project_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b)),
            "FCM service account project_id `{}` is not a project id",
            account.project_id
        );
        anyhow::ensure!(
            !account.client_email.is_empty(),
            "FCM service account client_email is empty"
        );
        let token_url = http_base_url(&account.token_uri, "FCM service account token_uri")?;
        let base = http_base_url(api_base, "FCM API base")?;
        let send_url = format!(
            "{}/v1/projects/{}/messages:send",
            base.as_str().trim_end_matches('/'),
            account.project_id
        );
        let send_url =
            Url::parse(&send_url).map_err(|e| anyhow::anyhow!("FCM send URL `{send_url}`: {e}"))?;
        let key =
            EncodingKey::from_rsa_pem(account.private_key.expose().as_bytes()).map_err(|e| {
                anyhow::anyhow!("FCM service account private_key is not an RSA key: {e}")
            })?;
        let fcm = Self {
            client: http_client(timeout),
            send_url,
            token_url,
            token_uri: account.token_uri,
            client_email: account.client_email,
            key_id: account.private_key_id,
            key,
            token: Mutex::new(None),
        };
        // Parsing the PEM does not check the key: sign once now rather than fail every send.
        fcm.assertion()
            .map_err(|e| anyhow::anyhow!("FCM service account private_key cannot sign: {e}"))?;
        Ok(fcm)
    }

    /// A signed token request for the messaging scope, valid for an hour.
    fn assertion(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.key_id);
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    /// The cached access token, or a new one when there is none or it expires within a minute.
    /// The lock is held while fetching, so concurrent sends wait for one request.
    async fn access_token(&self) -> Result<Secret, SendError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() + EXPIRY_MARGIN < token.expires_at
        {
            return Ok(token.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Drops the cached token if it is still `rejected` (another send may have replaced it).
    async fn forget(&self, rejected: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| &t.value == rejected) {
            *cached = None;
        }
    }

    /// Exchanges a signed assertion for an access token. Every failure is transient: the
    /// message is fine, the credentials or the token service are not (yet).
    async fn fetch_token(&self) -> Result<AccessToken, SendError> {
        let assertion = self
            .assertion()
            .map_err(|e| SendError::Transient(format!("signing the token request: {e}")))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER)
            .append_pair("assertion", &assertion)
            .finish();
        let response = post_form(self.client.post(self.token_url.clone()), form).await?;
        let status = response.status();
        let body = response.text().await.map_err(|e| unreachable(&e))?;
        if !status.is_success() {
            let short: String = body.chars().take(300).collect();
            return Err(SendError::Transient(format!(
                "getting an access token: {status}: {short}"
            )));
        }
        let answer: TokenAnswer = serde_json::from_str(&body).map_err(|e| {
            SendError::Transient(format!("getting an access token: unreadable answer: {e}"))
        })?;
        Ok(AccessToken {
            value: answer.access_token,
            expires_at: Instant::now() + Duration::from_secs(answer.expires_in),
        })
    }
}

#[async_trait::async_trait]
impl Provider for Fcm {
    fn name(&self) -> &'static str {
        "fcm"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        if message.to.trim().is_empty() {
            return Err(SendError::Permanent("no device token".into()));
        }
        let token = self.access_token().await?;
        let body = json!({
            "message": {
                "token": message.to,
                "notification": {"title": message.subject, "body": message.text},
                "data": {"notification_id": message.id},
            }
        });
        let response = self
            .client
            .post(self.send_url.clone())
            .bearer_auth(token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // Revoked or expired early: the next send fetches a new one.
            self.forget(&token).await;
            let body = response.text().await.unwrap_or_default();
            let short: String = body.chars().take(300).collect();
            return Err(SendError::Transient(format!("{status}: {short}")));
        }
        if !status.is_success() {
            return Err(refused(response).await);
        }
        // 200 means FCM took the message: an unreadable body must not make it resend.
        let body = response.text().await.unwrap_or_default();
        let name = serde_json::from_str::<Sent>(&body).ok().map(|s| s.name);
        Ok(Accepted {
            response: format!("{} {}", status.as_u16(), name.as_deref().unwrap_or("")),
            message_id: name,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::Mutex as StdMutex;

    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;
    use axum::http::StatusCode;
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::Value;

    use super::*;
    use crate::providers::test_support::{Received, closed_port_url, pem, serve};

    const PROJECT: &str = "mercato-test";
    const EMAIL: &str = "push@mercato-test.iam.gserviceaccount.com";
    const KEY_ID: &str = "k1";

    /// An RSA key as a service-account file holds it (PKCS#8 PEM) and its public half (PKCS#1
    /// DER) for the fake token endpoint.
    struct TestKey {
        pem: String,
        public_der: Vec<u8>,
    }

    fn test_key() -> TestKey {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        TestKey {
            pem: pem("PRIVATE KEY", pair.as_der().unwrap().as_ref()),
            public_der: pair.public_key().as_ref().to_vec(),
        }
    }

    /// A send request the fake FCM received.
    #[derive(Debug, Clone)]
    struct SeenSend {
        path: String,
        authorization: String,
        body: Value,
    }

    /// The fake Google: a token endpoint that verifies assertions and an FCM send endpoint.
    #[derive(Clone)]
    struct Fake {
        public_der: Arc<Vec<u8>>,
        token_uri: Arc<StdMutex<String>>,
        expires_in: u64,
        /// Verified assertion claims, one per token issued.
        grants: Arc<StdMutex<Vec<Value>>>,
        /// Why assertions were refused.
        refusals: Arc<StdMutex<Vec<String>>>,
        sends: Arc<StdMutex<Vec<SeenSend>>>,
    }

    impl Fake {
        fn issued(&self) -> usize {
            self.grants.lock().unwrap().len()
        }

        fn sends(&self) -> Vec<SeenSend> {
            self.sends.lock().unwrap().clone()
        }

        fn grant(&self, form: &HashMap<String, String>) -> Result<Value, String> {
            if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
                return Err(format!("grant_type {:?}", form.get("grant_type")));
            }
            let assertion = form.get("assertion").ok_or("no assertion")?;
            let token_uri = self.token_uri.lock().unwrap().clone();
            let mut validation = Validation::new(Algorithm::RS256);
            validation.set_audience(&[&token_uri]);
            validation.set_issuer(&[EMAIL]);
            validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
            let key = DecodingKey::from_rsa_der(&self.public_der);
            let data = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
                .map_err(|e| format!("assertion: {e}"))?;
            if data.header.kid.as_deref() != Some(KEY_ID) {
                return Err(format!("kid {:?}", data.header.kid));
            }
            let claims = data.claims;
            if claims["scope"] != SCOPE {
                return Err(format!("scope {}", claims["scope"]));
            }
            let iat = claims["iat"].as_i64().ok_or("iat")?;
            let exp = claims["exp"].as_i64().ok_or("exp")?;
            if exp - iat != 3600 || (chrono::Utc::now().timestamp() - iat).abs() > 60 {
                return Err(format!("iat {iat} exp {exp}"));
            }
            Ok(claims)
        }

        fn token(&self, body: &str) -> (StatusCode, String) {
            let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            match self.grant(&form) {
                Ok(claims) => {
                    let mut grants = self.grants.lock().unwrap();
                    grants.push(claims);
                    let answer = json!({
                        "access_token": format!("tok-{}", grants.len()),
                        "expires_in": self.expires_in,
                        "token_type": "Bearer"
                    });
                    (StatusCode::OK, answer.to_string())
                }
                Err(why) => {
                    self.refusals.lock().unwrap().push(why);
                    let answer = json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."});
                    (StatusCode::BAD_REQUEST, answer.to_string())
                }
            }
        }

        fn send(&self, path: &str, authorization: &str, body: &str) -> (StatusCode, String) {
            let body: Value = serde_json::from_str(body).unwrap();
            self.sends.lock().unwrap().push(SeenSend {
                path: path.to_owned(),
                authorization: authorization.to_owned(),
                body: body.clone(),
            });
            let current = format!("Bearer tok-{}", self.issued());
            if authorization != current {
                return fcm_error(401, "UNAUTHENTICATED", None);
            }
            match body["message"]["token"].as_str().unwrap() {
                "revoked" => fcm_error(401, "UNAUTHENTICATED", None),
                "gone" => fcm_error(404, "NOT_FOUND", Some("UNREGISTERED")),
                "garbage" => fcm_error(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT")),
                "slow-down" => fcm_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED")),
                "down" => fcm_error(503, "UNAVAILABLE", Some("UNAVAILABLE")),
                "broken" => fcm_error(500, "INTERNAL", Some("INTERNAL")),
                _ => {
                    let n = self.sends.lock().unwrap().len();
                    let answer = json!({"name": format!("projects/{PROJECT}/messages/0:{n}")});
                    (StatusCode::OK, answer.to_string())
                }
            }
        }
    }

    fn fcm_error(code: u16, status: &str, error_code: Option<&str>) -> (StatusCode, String) {
        let details: Vec<Value> = error_code
            .map(|c| {
                json!({
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": c
                })
            })
            .into_iter()
            .collect();
        let answer = json!({
            "error": {"code": code, "message": "refused", "status": status, "details": details}
        });
        (StatusCode::from_u16(code).unwrap(), answer.to_string())
    }

    /// Starts the fake Google verifying with `key`'s public half; returns it and its base URL.
    async fn fake_google(key: &TestKey, expires_in: u64) -> (Fake, String) {
        let fake = Fake {
            public_der: Arc::new(key.public_der.clone()),
            token_uri: Arc::default(),
            expires_in,
            grants: Arc::default(),
            refusals: Arc::default(),
            sends: Arc::default(),
        };
        let server = fake.clone();
        let (base, _) = serve(move |request: &Received| match request.path.as_str() {
            "/token" => server.token(request.text()),
            path => server.send(path, request.header("authorization"), request.text()),
        })
        .await;
        *fake.token_uri.lock().unwrap() = format!("{base}/token");
        (fake, base)
    }

    fn service_account(pem: &str, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": pem,
            "client_email": EMAIL,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn fcm(key: &TestKey, base: &str) -> Fcm {
        let account = service_account(&key.pem, &format!("{base}/token"));
        Fcm::from_service_account(&account, base, Duration::from_secs(5)).unwrap()
    }

    fn message(to: &str) -> Message {
        Message {
            id: "ntf_1".into(),
            to: to.into(),
            subject: "Order shipped".into(),
            text: "Order #42 is on its way".into(),
            html: None,
            data: json!({"order": 42}),
        }
    }

    #[tokio::test]
    async fn signs_a_verified_assertion_and_sends_the_v1_message() {
        let key = test_key();
        let (fake, base) = fake_google(&key, 3599).await;

        let accepted = fcm(&key, &base).send(&message("device-1")).await.unwrap();

        assert_eq!(
            accepted.message_id.as_deref(),
            Some("projects/mercato-test/messages/0:1")
        );
        assert!(fake.refusals.lock().unwrap().is_empty());
        let grants = fake.grants.lock().unwrap().clone();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0]["iss"], EMAIL);
        assert_eq!(grants[0]["aud"], format!("{base}/token"));
        assert_eq!(grants[0]["scope"], SCOPE);
        let sends = fake.sends();
        assert_eq!(sends.len(), 1);
        assert_eq!(sends[0].path, "/v1/projects/mercato-test/messages:send");
        assert_eq!(sends[0].authorization, "Bearer tok-1");
        assert_eq!(
            sends[0].body,
            json!({
                "message": {
                    "token": "device-1",
                    "notification": {"title": "Order shipped", "body": "Order #42 is on its way"},
                    "data": {"notification_id": "ntf_1"}
                }
            })
        );
    }

    #[tokio::test]
    async fn reuses_the_token_and_refetches_it_after_a_401() {
        let key = test_key();
        let (fake, base) = fake_google(&key, 3599).await;
        let provider = fcm(&key, &base);

        provider.send(&message("device-1")).await.unwrap();
        provider.send(&message("device-2")).await.unwrap();
        assert_eq!(fake.issued(), 1);

        let revoked = provider.send(&message("revoked")).await;
        assert!(
            matches!(&revoked, Err(SendError::Transient(e)) if e.starts_with("401")),
            "{revoked:?}"
        );
        assert_eq!(fake.issued(), 1);

        provider.send(&message("device-3")).await.unwrap();
        assert_eq!(fake.issued(), 2);
        let auth: Vec<String> = fake.sends().into_iter().map(|s| s.authorization).collect();
        assert_eq!(
            auth,
            [
                "Bearer tok-1",
                "Bearer tok-1",
                "Bearer tok-1",
                "Bearer tok-2"
            ]
        );
    }

    #[tokio::test]
    async fn refetches_a_token_that_expires_within_a_minute() {
        let key = test_key();
        let (fake, base) = fake_google(&key, 30).await;
        let provider = fcm(&key, &base);

        provider.send(&message("device-1")).await.unwrap();
        provider.send(&message("device-2")).await.unwrap();

        assert_eq!(fake.issued(), 2);
    }

    #[tokio::test]
    async fn unregistered_and_invalid_tokens_are_permanent() {
        let key = test_key();
        let (_fake, base) = fake_google(&key, 3599).await;
        let provider = fcm(&key, &base);

        for (to, expected) in [("gone", "UNREGISTERED"), ("garbage", "INVALID_ARGUMENT")] {
            let result = provider.send(&message(to)).await;
            assert!(
                matches!(&result, Err(SendError::Permanent(e)) if e.contains(expected)),
                "{to}: {result:?}"
            );
        }
        let empty = provider.send(&message(" ")).await;
        assert!(matches!(empty, Err(SendError::Permanent(_))), "{empty:?}");
    }

    #[tokio::test]
    async fn rate_limits_and_server_errors_are_transient() {
        let key = test_key();
        let (_fake, base) = fake_google(&key, 3599).await;
        let provider = fcm(&key, &base);

        for (to, status) in [("slow-down", "429"), ("down", "503"), ("broken", "500")] {
            let result = provider.send(&message(to)).await;
            assert!(
                matches!(&result, Err(SendError::Transient(e)) if e.starts_with(status)),
                "{to}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_assertion_signed_with_another_key_is_refused_and_transient() {
        let key = test_key();
        let (fake, base) = fake_google(&key, 3599).await;
        let other = test_key();
        let account = service_account(&other.pem, &format!("{base}/token"));
        let provider = Fcm::from_service_account(&account, &base, Duration::from_secs(5)).unwrap();

        let result = provider.send(&message("device-1")).await;

        assert!(
            matches!(&result, Err(SendError::Transient(e)) if e.contains("access token")),
            "{result:?}"
        );
        let refusals = fake.refusals.lock().unwrap().clone();
        assert_eq!(refusals.len(), 1);
        assert!(refusals[0].contains("InvalidSignature"), "{refusals:?}");
        assert!(fake.sends().is_empty());
    }

    #[tokio::test]
    async fn a_closed_port_is_transient() {
        let key = test_key();
        let base = closed_port_url();

        let result = fcm(&key, &base).send(&message("device-1")).await;

        assert!(matches!(result, Err(SendError::Transient(_))), "{result:?}");
    }

    #[test]
    fn rejects_an_unusable_service_account() {
        let key = test_key();
        let base = "https://fcm.googleapis.com";
        let token_uri = "https://oauth2.googleapis.com/token";
        let new = |json: &str, base: &str| {
            Fcm::from_service_account(json, base, Duration::from_secs(1)).map(|_| ())
        };

        assert!(new(&service_account(&key.pem, token_uri), base).is_ok());
        assert!(new("not json", base).is_err());
        assert!(new(r#"{"project_id": "p"}"#, base).is_err());
        assert!(new(&service_account("not a key", token_uri), base).is_err());
        let truncated = key.pem.replace(&key.pem[40..120], "");
        assert!(new(&service_account(&truncated, token_uri), base).is_err());
        assert!(new(&service_account(&key.pem, "token"), base).is_err());
        assert!(new(&service_account(&key.pem, token_uri), "fcm.googleapis.com").is_err());
        let mut odd_project: Value =
            serde_json::from_str(&service_account(&key.pem, token_uri)).unwrap();
        odd_project["project_id"] = json!("a/../b");
        assert!(new(&odd_project.to_string(), base).is_err());
    }
}
