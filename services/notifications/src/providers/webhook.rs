//! Webhooks: a JSON POST to the URL the recipient registered, signed Stripe-style when a
//! secret is configured (`X-Mercato-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`).
//!
//! Redirects are not followed: a receiver that moved must be re-registered, and following a
//! redirect would let a receiver point our signed POSTs at any other host.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::json;

use super::{Accepted, Message, Provider, SendError, classify, unreachable};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The header carrying the message id, so receivers can drop duplicates.
pub const EVENT_ID_HEADER: &str = "X-Mercato-Event-Id";
/// The header carrying the signature when a secret is configured.
pub const SIGNATURE_HEADER: &str = "X-Mercato-Signature";

/// The webhook provider.
pub struct Webhook {
    client: reqwest::Client,
    secret: Option<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A provider signing with `secret` when there is one, giving up on a receiver after
    /// `timeout`.
    pub fn new(secret: Option<String>, timeout: Duration) -> Self {
        Self {
            client: client_without_redirects(timeout),
            secret: secret.filter(|s| !s.is_empty()),
        }
    }
}

#[async_trait::async_trait]
impl Provider for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        let url = http_url(&message.to)?;
        let body = serde_json::to_vec(&json!({
            "id": message.id,
            "subject": message.subject,
            "body": message.text,
            "data": message.data,
        }))
        .map_err(|e| SendError::Permanent(format!("encoding the webhook body: {e}")))?;
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, &message.id);
        if let Some(secret) = &self.secret {
            let now = chrono::Utc::now().timestamp();
            request = request.header(SIGNATURE_HEADER, signature(secret, now, &body));
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        judge(response).await
    }
}

/// `t=<unix>,v1=<lowercase hex HMAC-SHA256(secret, "<unix>.<body>")>`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty tag would fail verification
    // on the receiver rather than here.
    let tag = HmacSha256::new_from_slice(secret.as_bytes())
        .map(|mut mac| {
            mac.update(unix.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default();
    format!("t={unix},v1={tag}")
}

/// An HTTP client with `timeout` that returns redirects instead of following them (the chat
/// provider uses it too).
pub(super) fn client_without_redirects(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        // Building fails only when the TLS backend cannot start; `Client::default` then panics
        // the same way `super::http_client` does, so no client ever silently follows redirects.
        .unwrap_or_default()
}

/// `to` as an http(s) URL; anything else can never be delivered.
pub(super) fn http_url(to: &str) -> Result<url::Url, SendError> {
    let url = url::Url::parse(to.trim())
        .map_err(|e| SendError::Permanent(format!("`{to}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(SendError::Permanent(format!(
            "`{to}` is not an http(s) URL"
        )));
    }
    Ok(url)
}

/// The outcome of a POST to a receiver: 2xx sent, 3xx and 410 Gone permanent, the rest as
/// [`classify`] says.
pub(super) async fn judge(response: reqwest::Response) -> Result<Accepted, SendError> {
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("nowhere")
            .to_owned();
        return Err(SendError::Permanent(format!(
            "{status}: redirects to {location}, which is not followed; register the new URL"
        )));
    }
    if status == StatusCode::GONE {
        let body = response.text().await.unwrap_or_default();
        let short: String = body.chars().take(500).collect();
        return Err(SendError::Permanent(format!("{status}: {short}")));
    }
    let (code, short) = classify(response).await?;
    Ok(Accepted {
        message_id: None,
        response: format!("{code} {short}").trim_end().to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::Router;
    use axum::http::{Method, StatusCode};
    use serde_json::Value;

    use super::*;
    use crate::providers::test_support::{Received, canned, closed_port_url, spawn};

    fn message(to: &str) -> Message {
        Message {
            id: "ntf_01".to_owned(),
            to: to.to_owned(),
            subject: "Order shipped".to_owned(),
            text: "Your order is on its way.".to_owned(),
            html: Some("<p>ignored by webhooks</p>".to_owned()),
            data: json!({"order_id": "ord_7", "items": 2}),
        }
    }

    fn webhook(secret: Option<&str>) -> Webhook {
        Webhook::new(secret.map(str::to_owned), Duration::from_secs(5))
    }

    fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
        received.headers.get(name).map(|v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn posts_the_message_as_json_to_the_url() {
        let (base, log) = canned(StatusCode::OK, &[], "thanks").await;

        let accepted = webhook(None)
            .send(&message(&format!("{base}/hooks/orders?x=1")))
            .await
            .unwrap();

        assert_eq!(accepted.message_id, None);
        assert_eq!(accepted.response, "200 thanks");
        let received = log.all();
        assert_eq!(received.len(), 1);
        let received = &received[0];
        assert_eq!(received.method, Method::POST);
        assert_eq!(received.path, "/hooks/orders");
        assert_eq!(header(received, "content-type"), Some("application/json"));
        assert_eq!(header(received, "x-mercato-event-id"), Some("ntf_01"));
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(
            body,
            json!({
                "id": "ntf_01",
                "subject": "Order shipped",
                "body": "Your order is on its way.",
                "data": {"order_id": "ord_7", "items": 2},
            })
        );
    }

    #[tokio::test]
    async fn sends_no_signature_without_a_secret() {
        let (base, log) = canned(StatusCode::NO_CONTENT, &[], "").await;

        let accepted = webhook(None).send(&message(&base)).await.unwrap();

        assert_eq!(accepted.response, "204");
        let received = log.all()[0].clone();
        assert_eq!(header(&received, "x-mercato-signature"), None);
    }

    #[tokio::test]
    async fn signs_the_exact_body_with_the_secret() {
        let (base, log) = canned(StatusCode::OK, &[], "").await;
        let before = chrono::Utc::now().timestamp();

        webhook(Some("whsec_test"))
            .send(&message(&base))
            .await
            .unwrap();

        let received = log.all()[0].clone();
        let signature = header(&received, "x-mercato-signature").unwrap();
        let (t, v1) = signature.split_once(',').unwrap();
        let t: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
        let v1 = v1.strip_prefix("v1=").unwrap();
        assert!(
            (before..=before + 60).contains(&t),
            "timestamp {t} is not now"
        );
        assert_eq!(v1, v1.to_lowercase());
        // Computed independently of `signature()`.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&received.body);
        mac.verify_slice(&hex::decode(v1).unwrap()).unwrap();
    }

    #[tokio::test]
    async fn an_empty_secret_means_unsigned() {
        let (base, log) = canned(StatusCode::OK, &[], "").await;

        webhook(Some("")).send(&message(&base)).await.unwrap();

        let received = log.all()[0].clone();
        assert_eq!(header(&received, "x-mercato-signature"), None);
    }

    #[test]
    fn signature_has_the_documented_format() {
        let signed = signature("key", 1_700_000_000, b"{}");
        let mut mac = HmacSha256::new_from_slice(b"key").unwrap();
        mac.update(b"1700000000.{}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(signed, format!("t=1700000000,v1={expected}"));
    }

    #[tokio::test]
    async fn a_503_is_transient() {
        let (base, _) = canned(StatusCode::SERVICE_UNAVAILABLE, &[], "busy").await;
        let error = webhook(None).send(&message(&base)).await.unwrap_err();
        assert!(
            matches!(error, SendError::Transient(ref m) if m.contains("503")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_429_is_transient() {
        let (base, _) = canned(StatusCode::TOO_MANY_REQUESTS, &[], "slow down").await;
        let error = webhook(None).send(&message(&base)).await.unwrap_err();
        assert!(matches!(error, SendError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn a_400_is_permanent() {
        let (base, _) = canned(StatusCode::BAD_REQUEST, &[], "bad").await;
        let error = webhook(None).send(&message(&base)).await.unwrap_err();
        assert!(
            matches!(error, SendError::Permanent(ref m) if m.contains("400")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_410_gone_is_permanent() {
        let (base, _) = canned(StatusCode::GONE, &[], "unsubscribed").await;
        let error = webhook(None).send(&message(&base)).await.unwrap_err();
        assert!(
            matches!(error, SendError::Permanent(ref m) if m.contains("410") && m.contains("unsubscribed")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_redirect_is_permanent_and_not_followed() {
        let (base, log) = canned(StatusCode::FOUND, &[("location", "/elsewhere")], "").await;

        let error = webhook(None)
            .send(&message(&format!("{base}/hook")))
            .await
            .unwrap_err();

        assert!(
            matches!(error, SendError::Permanent(ref m) if m.contains("302") && m.contains("/elsewhere")),
            "{error}"
        );
        let received = log.all();
        assert_eq!(received.len(), 1, "the redirect was followed");
        assert_eq!(received[0].path, "/hook");
    }

    #[tokio::test]
    async fn a_closed_port_is_transient() {
        let error = webhook(None)
            .send(&message(&format!("{}/hook", closed_port_url())))
            .await
            .unwrap_err();

        assert!(matches!(error, SendError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn a_receiver_slower_than_the_timeout_is_transient() {
        let app = Router::new().fallback(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        });
        let base = spawn(app).await;

        let error = Webhook::new(None, Duration::from_millis(200))
            .send(&message(&format!("{base}/")))
            .await
            .unwrap_err();

        assert!(matches!(error, SendError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn a_recipient_that_is_not_an_http_url_is_permanent() {
        for to in ["not a url", "ftp://example.com/x", "mailto:a@b.c"] {
            let error = webhook(None).send(&message(to)).await.unwrap_err();
            assert!(matches!(error, SendError::Permanent(_)), "{to}: {error}");
        }
    }
}
