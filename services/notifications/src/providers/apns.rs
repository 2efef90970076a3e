//! Push through the Apple Push Notification service with token-based authentication over
//! HTTP/2. A provider token (an ES256 JWT signed with the team's `.p8` key) is reused and
//! replaced after fifty minutes (Apple wants between twenty and sixty); then
//! `POST {base}/3/device/{device token}`. `BadDeviceToken`, `DeviceTokenNotForTopic`,
//! `Unregistered` and other 4xx are permanent; an expired or invalid provider token drops the
//! cached one and is transient, like 429, 5xx and no answer.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercato_kernel::config::Secret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use super::{Accepted, Message, Provider, SendError, http_base_url, unreachable};

/// A provider token is replaced once it is this old.
const TOKEN_LIFETIME: Duration = Duration::from_secs(50 * 60);

/// The APNs push provider.
pub struct Apns {
    client: reqwest::Client,
    /// `api_base` without a trailing slash.
    base: String,
    key_id: String,
    team_id: String,
    topic: String,
    key: EncodingKey,
    token: Mutex<Option<ProviderToken>>,
}

/// The claims of a provider token.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
}

/// A signed provider token and when it was made.
struct ProviderToken {
    value: Secret,
    made_at: Instant,
}

/// The body of an APNs refusal.
#[derive(Deserialize)]
struct Refusal {
    reason: String,
}

impl Apns {
    /// A provider for the app `topic` (its bundle id), signing with the `.p8` key `key_pem`
    /// (PKCS#8 P-256) of `key_id` and `team_id`, sending through `api_base`
    /// (`https://api.push.apple.com`). Fails when a value is malformed or the key cannot sign.
    pub fn new(
        api_base: &str,
        key_pem: &str,
        key_id: &str,
        team_id: &str,
        topic: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let base = http_base_url(api_base, "APNs API base")?;
        anyhow::ensure!(
            is_apple_id(key_id),
            "APNs key id `{key_id}` is not a 10-character key id"
        );
        anyhow::ensure!(
            is_apple_id(team_id),
            "APNs team id `{team_id}` is not a 10-character team id"
        );
        anyhow::ensure!(
            !topic.is_empty()
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
            "APNs topic `{topic}` is not a bundle id"
        );
        let key = EncodingKey::from_ec_pem(key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("APNs key is not an EC private key in PEM: {e}"))?;
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if base.scheme() == "http" {
            // Apple speaks only HTTP/2; over TLS ALPN chooses it, a plain (test) server needs h2c.
            builder = builder.http2_prior_knowledge();
        }
        let client = builder
            .build()
            .map_err(|e| anyhow::anyhow!("APNs HTTP client: {e}"))?;
        let apns = Self {
            client,
            base: base.as_str().trim_end_matches('/').to_owned(),
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
            topic: topic.to_owned(),
            key,
            token: Mutex::new(None),
        };
        // Parsing the PEM does not check the key: sign once now rather than fail every send.
        apns.sign()
            .map_err(|e| anyhow::anyhow!("APNs key cannot sign: {e}"))?;
        Ok(apns)
    }

    /// A provider token issued now.
    fn sign(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            iss: &self.team_id,
            iat: chrono::Utc::now().timestamp(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    /// The cached provider token, or a new one when there is none or it is fifty minutes old.
    async fn provider_token(&self) -> Result<Secret, SendError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && token.made_at.elapsed() < TOKEN_LIFETIME
        {
            return Ok(token.value.clone());
        }
        let value = Secret::from(
            self.sign()
                .map_err(|e| SendError::Transient(format!("signing the provider token: {e}")))?,
        );
        *cached = Some(ProviderToken {
            value: value.clone(),
            made_at: Instant::now(),
        });
        Ok(value)
    }

    /// Drops the cached token if it is still `rejected` (another send may have replaced it).
    async fn forget(&self, rejected: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| &t.value == rejected) {
            *cached = None;
        }
    }
}

#[async_trait::async_trait]
impl Provider for Apns {
    fn name(&self) -> &'static str {
        "apns"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        let device = message.to.trim();
        if device.is_empty() || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SendError::Permanent(
                "the device token is not a hex APNs token".into(),
            ));
        }
        let token = self.provider_token().await?;
        let apns_id = apns_id(&message.id);
        let body = json!({
            "aps": {
                "alert": {"title": message.subject, "body": message.text},
                "sound": "default",
            },
            "notification_id": message.id,
        });
        let response = self
            .client
            .post(format!("{}/3/device/{device}", self.base))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("bearer {}", token.expose()),
            )
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-id", &apns_id)
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        let answered_id = response
            .headers()
            .get("apns-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A 200 has an empty body; a refusal's reason is in it. Unreadable is not a reason
        // to resend a message Apple took.
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let id = answered_id.unwrap_or(apns_id);
            return Ok(Accepted {
                response: format!("{} {id}", status.as_u16()),
                message_id: Some(id),
            });
        }
        let reason = serde_json::from_str::<Refusal>(&text)
            .map(|r| r.reason)
            .unwrap_or_else(|_| text.chars().take(300).collect());
        let error = format!("{status}: {reason}");
        match (status.as_u16(), reason.as_str()) {
            (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                // The next send signs a new one.
                self.forget(&token).await;
                Err(SendError::Transient(error))
            }
            (429, _) | (500..=599, _) => Err(SendError::Transient(error)),
            _ => Err(SendError::Permanent(error)),
        }
    }
}

/// The `apns-id` of a message: the UUID in its `ntf_…` id, or a new one for other ids.
fn apns_id(message_id: &str) -> String {
    let body = message_id
        .rsplit_once('_')
        .map_or(message_id, |(_, body)| body);
    uuid::Uuid::try_parse(body)
        .unwrap_or_else(|_| uuid::Uuid::now_v7())
        .hyphenated()
        .to_string()
}

/// Apple's key and team ids: ten ASCII letters or digits.
fn is_apple_id(id: &str) -> bool {
    id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::Mutex as StdMutex;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use hyper::{Response, StatusCode, Version};
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::Value;

    use super::*;
    use crate::providers::test_support::{Log, Received, closed_port_url, pem, serve_http2};

    const KEY_ID: &str = "ABC123DEFG";
    const TEAM_ID: &str = "DEF123GHIJ";
    const TOPIC: &str = "com.mercato.app";
    const DEVICE: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const NTF_ID: &str = "ntf_0192f0c4a1b27c3d8e9f0a1b2c3d4e5f";

    /// A P-256 key as a `.p8` file holds it (PKCS#8 PEM) and its public point for the fake.
    struct TestKey {
        pem: String,
        public_point: Vec<u8>,
    }

    fn test_key() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        TestKey {
            pem: pem("PRIVATE KEY", pkcs8.as_ref()),
            public_point: pair.public_key().as_ref().to_vec(),
        }
    }

    /// The fake Apple: verifies provider tokens, records requests, answers from a script.
    #[derive(Clone)]
    struct Fake {
        public_point: Arc<Vec<u8>>,
        seen: Log,
        /// Verified token claims, one per request.
        claims: Arc<StdMutex<Vec<Value>>>,
        /// Why tokens were refused.
        refusals: Arc<StdMutex<Vec<String>>>,
        /// The next answers (status, reason); 200 when empty.
        script: Arc<StdMutex<VecDeque<(u16, &'static str)>>>,
    }

    impl Fake {
        fn seen(&self) -> Vec<Received> {
            self.seen.all()
        }

        fn next_answers(&self, answers: &[(u16, &'static str)]) {
            self.script.lock().unwrap().extend(answers.iter().copied());
        }

        fn verify(&self, authorization: &str) -> Result<Value, String> {
            let jwt = authorization
                .strip_prefix("bearer ")
                .ok_or_else(|| format!("authorization {authorization:?}"))?;
            let mut validation = Validation::new(Algorithm::ES256);
            validation.set_issuer(&[TEAM_ID]);
            validation.set_required_spec_claims(&["iat", "iss"]);
            validation.validate_exp = false;
            let key = DecodingKey::from_ec_der(&self.public_point);
            let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
                .map_err(|e| format!("token: {e:?}"))?;
            if data.header.kid.as_deref() != Some(KEY_ID) {
                return Err(format!("kid {:?}", data.header.kid));
            }
            let iat = data.claims["iat"].as_i64().ok_or("iat")?;
            if (chrono::Utc::now().timestamp() - iat).abs() > 60 {
                return Err(format!("iat {iat}"));
            }
            Ok(data.claims)
        }

        fn answer(&self, seen: &Received) -> Response<axum::body::Body> {
            if seen.version != Version::HTTP_2 {
                return refusal(505, "HttpVersionNotSupported");
            }
            match self.verify(seen.header("authorization")) {
                Ok(claims) => self.claims.lock().unwrap().push(claims),
                Err(why) => {
                    self.refusals.lock().unwrap().push(why);
                    return refusal(403, "InvalidProviderToken");
                }
            }
            match self.script.lock().unwrap().pop_front() {
                Some((status, reason)) => refusal(status, reason),
                None => Response::builder()
                    .header("apns-id", seen.header("apns-id"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            }
        }
    }

    fn refusal(status: u16, reason: &str) -> Response<axum::body::Body> {
        let mut body = json!({"reason": reason});
        if status == 410 {
            body["timestamp"] = json!(1_700_000_000_000_i64);
        }
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap()
    }

    /// Starts the fake APNs (HTTP/2 without TLS) verifying with `key`'s public half; returns
    /// it and its base URL.
    async fn fake_apple(key: &TestKey) -> (Fake, String) {
        let mut fake = Fake {
            public_point: Arc::new(key.public_point.clone()),
            seen: Log::default(),
            claims: Arc::default(),
            refusals: Arc::default(),
            script: Arc::default(),
        };
        let server = fake.clone();
        let (base, seen) = serve_http2(move |request: &Received| server.answer(request)).await;
        fake.seen = seen;
        (fake, base)
    }

    fn apns(key: &TestKey, base: &str) -> Apns {
        Apns::new(
            base,
            &key.pem,
            KEY_ID,
            TEAM_ID,
            TOPIC,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn message(to: &str) -> Message {
        Message {
            id: NTF_ID.into(),
            to: to.into(),
            subject: "Order shipped".into(),
            text: "Order #42 is on its way".into(),
            html: None,
            data: json!({"order": 42}),
        }
    }

    #[tokio::test]
    async fn sends_a_signed_alert_over_http2() {
        let key = test_key();
        let (fake, base) = fake_apple(&key).await;

        let accepted = apns(&key, &base).send(&message(DEVICE)).await.unwrap();

        let expected_id = "0192f0c4-a1b2-7c3d-8e9f-0a1b2c3d4e5f";
        assert_eq!(accepted.message_id.as_deref(), Some(expected_id));
        assert!(fake.refusals.lock().unwrap().is_empty());
        let seen = fake.seen();
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert_eq!(request.version, Version::HTTP_2);
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, format!("/3/device/{DEVICE}"));
        assert!(request.header("authorization").starts_with("bearer ey"));
        assert_eq!(request.header("apns-topic"), TOPIC);
        assert_eq!(request.header("apns-push-type"), "alert");
        assert_eq!(request.header("apns-priority"), "10");
        assert_eq!(request.header("apns-id"), expected_id);
        assert_eq!(
            request.json(),
            json!({
                "aps": {
                    "alert": {"title": "Order shipped", "body": "Order #42 is on its way"},
                    "sound": "default"
                },
                "notification_id": NTF_ID
            })
        );
        let claims = fake.claims.lock().unwrap().clone();
        assert_eq!(claims.len(), 1);
        let fields: Vec<&String> = claims[0].as_object().unwrap().keys().collect();
        assert_eq!(fields, ["iat", "iss"]);
        assert_eq!(claims[0]["iss"], TEAM_ID);
    }

    #[tokio::test]
    async fn a_message_id_without_a_uuid_gets_a_new_apns_id() {
        let key = test_key();
        let (fake, base) = fake_apple(&key).await;
        let mut message = message(DEVICE);
        message.id = "external-7".into();

        let accepted = apns(&key, &base).send(&message).await.unwrap();

        let id = accepted.message_id.unwrap();
        assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id}");
        assert_eq!(fake.seen()[0].header("apns-id"), id);
    }

    #[tokio::test]
    async fn reuses_the_token_and_signs_a_new_one_after_expired_provider_token() {
        let key = test_key();
        let (fake, base) = fake_apple(&key).await;
        let provider = apns(&key, &base);

        provider.send(&message(DEVICE)).await.unwrap();
        provider.send(&message(DEVICE)).await.unwrap();
        fake.next_answers(&[(403, "ExpiredProviderToken")]);
        let expired = provider.send(&message(DEVICE)).await;
        assert!(
            matches!(&expired, Err(SendError::Transient(e))
                if e.starts_with("403") && e.contains("ExpiredProviderToken")),
            "{expired:?}"
        );
        provider.send(&message(DEVICE)).await.unwrap();
        provider.send(&message(DEVICE)).await.unwrap();

        let auth: Vec<String> = fake
            .seen()
            .iter()
            .map(|s| s.header("authorization").to_owned())
            .collect();
        assert_eq!(auth.len(), 5);
        assert_eq!(auth[0], auth[1]);
        assert_eq!(auth[0], auth[2]);
        assert_ne!(auth[2], auth[3]);
        assert_eq!(auth[3], auth[4]);
        assert!(fake.refusals.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn signs_a_new_token_after_fifty_minutes() {
        let key = test_key();
        let (fake, base) = fake_apple(&key).await;
        let provider = apns(&key, &base);
        provider.send(&message(DEVICE)).await.unwrap();
        // Age the cached token (skipped where the monotonic clock is younger than an hour).
        let Some(old) = Instant::now().checked_sub(Duration::from_secs(51 * 60)) else {
            return;
        };
        provider.token.lock().await.as_mut().unwrap().made_at = old;

        provider.send(&message(DEVICE)).await.unwrap();

        let seen = fake.seen();
        assert_ne!(
            seen[0].header("authorization"),
            seen[1].header("authorization")
        );
    }

    #[tokio::test]
    async fn a_token_signed_with_another_key_is_dropped_and_transient() {
        let key = test_key();
        let (fake, base) = fake_apple(&key).await;
        let provider = apns(&test_key(), &base);

        let result = provider.send(&message(DEVICE)).await;

        assert!(
            matches!(&result, Err(SendError::Transient(e)) if e.contains("InvalidProviderToken")),
            "{result:?}"
        );
        let refusals = fake.refusals.lock().unwrap().clone();
        assert_eq!(refusals.len(), 1);
        assert!(refusals[0].contains("InvalidSignature"), "{refusals:?}");
        assert!(provider.token.lock().await.is_none());
    }

    #[tokio::test]
    async fn unregistered_and_bad_device_tokens_are_permanent() {
        let key = test_key();
        let (fake, base) = fake_apple(&key).await;
        let provider = apns(&key, &base);
        let answers = [
            (410, "Unregistered"),
            (400, "BadDeviceToken"),
            (400, "DeviceTokenNotForTopic"),
            (413, "PayloadTooLarge"),
        ];

        for (status, reason) in answers {
            fake.next_answers(&[(status, reason)]);
            let result = provider.send(&message(DEVICE)).await;
            assert!(
                matches!(&result, Err(SendError::Permanent(e))
                    if e.starts_with(&status.to_string()) && e.contains(reason)),
                "{reason}: {result:?}"
            );
        }
        for to in ["", "not-hex", "ab/../cd"] {
            let result = provider.send(&message(to)).await;
            assert!(matches!(result, Err(SendError::Permanent(_))), "{result:?}");
        }
        assert_eq!(fake.seen().len(), answers.len());
    }

    #[tokio::test]
    async fn rate_limits_and_server_errors_are_transient() {
        let key = test_key();
        let (fake, base) = fake_apple(&key).await;
        let provider = apns(&key, &base);

        for (status, reason) in [
            (429, "TooManyRequests"),
            (503, "ServiceUnavailable"),
            (500, "InternalServerError"),
        ] {
            fake.next_answers(&[(status, reason)]);
            let result = provider.send(&message(DEVICE)).await;
            assert!(
                matches!(&result, Err(SendError::Transient(e))
                    if e.starts_with(&status.to_string()) && e.contains(reason)),
                "{reason}: {result:?}"
            );
        }
        // The provider token was fine: all three used the same one.
        let seen = fake.seen();
        assert!(
            seen.iter()
                .all(|s| s.header("authorization") == seen[0].header("authorization"))
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_transient() {
        let key = test_key();
        let base = closed_port_url();

        let result = apns(&key, &base).send(&message(DEVICE)).await;

        assert!(matches!(result, Err(SendError::Transient(_))), "{result:?}");
    }

    #[test]
    fn rejects_a_bad_key_or_malformed_settings() {
        let key = test_key();
        let base = "https://api.push.apple.com";
        let new = |base: &str, pem: &str, key_id: &str, team_id: &str, topic: &str| {
            Apns::new(base, pem, key_id, team_id, topic, Duration::from_secs(1)).map(|_| ())
        };

        assert!(new(base, &key.pem, KEY_ID, TEAM_ID, TOPIC).is_ok());
        assert!(new(base, "not a key", KEY_ID, TEAM_ID, TOPIC).is_err());
        let truncated = key.pem.replace(&key.pem[40..100], "");
        assert!(new(base, &truncated, KEY_ID, TEAM_ID, TOPIC).is_err());
        let garbage = pem("PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(new(base, &garbage, KEY_ID, TEAM_ID, TOPIC).is_err());
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let rsa_pem = pem(
            "PRIVATE KEY",
            aws_lc_rs::encoding::AsDer::as_der(&rsa).unwrap().as_ref(),
        );
        assert!(new(base, &rsa_pem, KEY_ID, TEAM_ID, TOPIC).is_err());
        assert!(new("api.push.apple.com", &key.pem, KEY_ID, TEAM_ID, TOPIC).is_err());
        assert!(new(base, &key.pem, "short", TEAM_ID, TOPIC).is_err());
        assert!(new(base, &key.pem, KEY_ID, "TEAM/ID/12", TOPIC).is_err());
        assert!(new(base, &key.pem, KEY_ID, TEAM_ID, "").is_err());
        assert!(new(base, &key.pem, KEY_ID, TEAM_ID, "com.app\r\nx: y").is_err());
    }
}
