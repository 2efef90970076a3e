//! Email through SendGrid's v3 Mail Send API (`POST /v3/mail/send`, bearer API key). SendGrid
//! answers 202 with its id in `X-Message-Id`; the notification id travels as a custom arg
//! (shown in SendGrid's event webhooks) and in the `Message-ID` header.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use super::{Accepted, Message, Provider, SendError, classify, http_client, unreachable};

/// The header SendGrid returns its message id in.
const MESSAGE_ID_HEADER: &str = "x-message-id";

/// The SendGrid provider.
pub struct SendGrid {
    client: reqwest::Client,
    endpoint: url::Url,
    /// `Bearer <key>`, marked sensitive so it never prints.
    authorization: HeaderValue,
    from: Sender,
}

impl std::fmt::Debug for SendGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGrid")
            .field("endpoint", &self.endpoint.as_str())
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SendGrid {
    /// A provider posting to `api_base` (`https://api.sendgrid.com`) with `api_key`, sending as
    /// `from` (`Name <address>` or a bare address).
    pub fn new(
        api_base: &str,
        api_key: &str,
        from: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let base = url::Url::parse(api_base.trim())
            .with_context(|| format!("SENDGRID_API_BASE `{api_base}` is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.host().is_none()
            || base.query().is_some()
            || base.fragment().is_some()
        {
            bail!("SENDGRID_API_BASE `{api_base}` is not an http(s) base URL");
        }
        let endpoint = url::Url::parse(&format!(
            "{}/v3/mail/send",
            base.as_str().trim_end_matches('/')
        ))
        .with_context(|| format!("building the mail send URL from `{api_base}`"))?;
        let api_key = api_key.trim();
        if api_key.is_empty() {
            bail!("the SendGrid API key is empty");
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {api_key}")).map_err(|_| {
                anyhow::anyhow!("the SendGrid API key has characters a header cannot hold")
            })?;
        authorization.set_sensitive(true);
        let from =
            Sender::parse(from).with_context(|| format!("SMTP_FROM `{from}` is not usable"))?;
        Ok(Self {
            client: http_client(timeout),
            endpoint,
            authorization,
            from,
        })
    }

    fn body(&self, message: &Message) -> Value {
        let mut content = Vec::with_capacity(2);
        // SendGrid refuses an empty content value, so an HTML-only message has no text part;
        // text/plain must come first when both are present.
        if !message.text.is_empty() || message.html.is_none() {
            content.push(json!({"type": "text/plain", "value": message.text}));
        }
        if let Some(html) = &message.html {
            content.push(json!({"type": "text/html", "value": html}));
        }
        let mut from = json!({"email": self.from.email});
        if let Some(name) = &self.from.name {
            from["name"] = json!(name);
        }
        json!({
            "personalizations": [{"to": [{"email": message.to.trim()}]}],
            "from": from,
            "subject": message.subject,
            "content": content,
            "custom_args": {"notification_id": message.id},
            "headers": {"Message-ID": format!("<{}@mercato>", message.id)},
        })
    }
}

#[async_trait::async_trait]
impl Provider for SendGrid {
    fn name(&self) -> &'static str {
        "sendgrid"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        if !is_address(message.to.trim()) {
            return Err(SendError::Permanent(format!(
                "`{}` is not an email address",
                message.to
            )));
        }
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(self.body(message).to_string())
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        let message_id = response
            .headers()
            .get(MESSAGE_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let result = classify(response).await;
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            let detail = match result {
                Err(SendError::Permanent(m) | SendError::Transient(m)) => m,
                Ok((_, body)) => body,
            };
            return Err(SendError::Permanent(format!(
                "sendgrid refused the API key: {detail}"
            )));
        }
        let (code, short) = result?;
        Ok(Accepted {
            message_id,
            response: format!("{code} {short}").trim_end().to_owned(),
        })
    }
}

/// The sender mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sender {
    name: Option<String>,
    email: String,
}

impl Sender {
    /// `Name <address>`, `"Name, Inc." <address>`, `<address>` or `address`.
    fn parse(mailbox: &str) -> anyhow::Result<Self> {
        let mailbox = mailbox.trim();
        let (name, email) = match mailbox.strip_suffix('>') {
            Some(rest) => {
                let Some((name, email)) = rest.rsplit_once('<') else {
                    bail!("`>` without `<`");
                };
                let name = name.trim();
                let name = name
                    .strip_prefix('"')
                    .and_then(|n| n.strip_suffix('"'))
                    .unwrap_or(name)
                    .trim();
                (name, email.trim())
            }
            None => ("", mailbox),
        };
        if !is_address(email) {
            bail!("`{email}` is not an email address");
        }
        if name.chars().any(|c| c.is_control() || c == '<' || c == '>') {
            bail!("the display name `{name}` has characters a mailbox cannot hold");
        }
        Ok(Self {
            name: (!name.is_empty()).then(|| name.to_owned()),
            email: email.to_owned(),
        })
    }
}

/// A plausible `local@domain` address: one `@`, both sides non-empty, no spaces or brackets.
/// SendGrid does the real check; this catches what can never be sent.
fn is_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let allowed = |c: char| !c.is_whitespace() && !c.is_control() && !"<>@,;\"".contains(c);
    !local.is_empty()
        && !domain.is_empty()
        && local.chars().all(allowed)
        && domain.chars().all(allowed)
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::{Method, StatusCode};

    use super::*;
    use crate::providers::test_support::{canned, closed_port_url};

    fn message(html: Option<&str>) -> Message {
        Message {
            id: "ntf_03".to_owned(),
            to: "ada@example.com".to_owned(),
            subject: "Your receipt".to_owned(),
            text: "Thanks for your order.".to_owned(),
            html: html.map(str::to_owned),
            data: json!({}),
        }
    }

    fn sendgrid(base: &str) -> SendGrid {
        SendGrid::new(
            base,
            "SG.test-key",
            "Mercato <no-reply@mercato.local>",
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn posts_the_mail_send_request() {
        let (base, log) = canned(StatusCode::ACCEPTED, &[("x-message-id", "sg-abc123")], "").await;

        let accepted = sendgrid(&format!("{base}/"))
            .send(&message(Some("<p>Thanks for your order.</p>")))
            .await
            .unwrap();

        assert_eq!(accepted.message_id.as_deref(), Some("sg-abc123"));
        assert_eq!(accepted.response, "202");
        let received = log.all();
        assert_eq!(received.len(), 1);
        let received = &received[0];
        assert_eq!(received.method, Method::POST);
        assert_eq!(received.path, "/v3/mail/send");
        assert_eq!(
            received.headers.get("authorization").unwrap(),
            "Bearer SG.test-key"
        );
        assert_eq!(
            received.headers.get("content-type").unwrap(),
            "application/json"
        );
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(
            body,
            json!({
                "personalizations": [{"to": [{"email": "ada@example.com"}]}],
                "from": {"email": "no-reply@mercato.local", "name": "Mercato"},
                "subject": "Your receipt",
                "content": [
                    {"type": "text/plain", "value": "Thanks for your order."},
                    {"type": "text/html", "value": "<p>Thanks for your order.</p>"},
                ],
                "custom_args": {"notification_id": "ntf_03"},
                "headers": {"Message-ID": "<ntf_03@mercato>"},
            })
        );
    }

    #[tokio::test]
    async fn sends_only_text_without_html_and_keeps_a_base_path() {
        let (base, log) = canned(StatusCode::ACCEPTED, &[], "").await;

        let accepted = SendGrid::new(
            &format!("{base}/proxy"),
            "SG.k",
            "no-reply@mercato.local",
            Duration::from_secs(5),
        )
        .unwrap()
        .send(&message(None))
        .await
        .unwrap();

        assert_eq!(accepted.message_id, None);
        let received = log.all()[0].clone();
        assert_eq!(received.path, "/proxy/v3/mail/send");
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(body["from"], json!({"email": "no-reply@mercato.local"}));
        assert_eq!(
            body["content"],
            json!([{"type": "text/plain", "value": "Thanks for your order."}])
        );
    }

    #[tokio::test]
    async fn a_401_is_permanent() {
        let (base, _) = canned(
            StatusCode::UNAUTHORIZED,
            &[],
            r#"{"errors":[{"message":"The provided authorization grant is invalid"}]}"#,
        )
        .await;
        let error = sendgrid(&base).send(&message(None)).await.unwrap_err();
        assert!(
            matches!(error, SendError::Permanent(ref m) if m.contains("401")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_403_is_permanent() {
        let (base, _) = canned(StatusCode::FORBIDDEN, &[], "").await;
        let error = sendgrid(&base).send(&message(None)).await.unwrap_err();
        assert!(matches!(error, SendError::Permanent(_)), "{error}");
    }

    #[tokio::test]
    async fn a_429_is_transient() {
        let (base, _) = canned(StatusCode::TOO_MANY_REQUESTS, &[], "").await;
        let error = sendgrid(&base).send(&message(None)).await.unwrap_err();
        assert!(matches!(error, SendError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn a_503_is_transient() {
        let (base, _) = canned(StatusCode::SERVICE_UNAVAILABLE, &[], "").await;
        let error = sendgrid(&base).send(&message(None)).await.unwrap_err();
        assert!(matches!(error, SendError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn a_400_is_permanent() {
        let (base, _) = canned(StatusCode::BAD_REQUEST, &[], "bad").await;
        let error = sendgrid(&base).send(&message(None)).await.unwrap_err();
        assert!(matches!(error, SendError::Permanent(_)), "{error}");
    }

    #[tokio::test]
    async fn a_closed_port_is_transient() {
        let error = sendgrid(&closed_port_url())
            .send(&message(None))
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn a_recipient_that_is_not_an_address_is_permanent_and_not_sent() {
        let (base, log) = canned(StatusCode::ACCEPTED, &[], "").await;
        let mut bad = message(None);
        bad.to = "+15551234567".to_owned();
        let error = sendgrid(&base).send(&bad).await.unwrap_err();
        assert!(matches!(error, SendError::Permanent(_)), "{error}");
        assert!(log.all().is_empty());
    }

    #[test]
    fn parses_sender_mailboxes() {
        let cases = [
            (
                "Mercato <no-reply@mercato.local>",
                Some("Mercato"),
                "no-reply@mercato.local",
            ),
            ("  a@b.c  ", None, "a@b.c"),
            ("<a@b.c>", None, "a@b.c"),
            (r#""Mercato, Inc." <a@b.c>"#, Some("Mercato, Inc."), "a@b.c"),
        ];
        for (input, name, email) in cases {
            let sender = Sender::parse(input).unwrap();
            assert_eq!(sender.name.as_deref(), name, "{input}");
            assert_eq!(sender.email, email, "{input}");
        }
    }

    #[test]
    fn rejects_unusable_senders() {
        for from in [
            "",
            "Mercato",
            "Mercato <>",
            "a@b.c>",
            "Mercato <a b@c.d>",
            "@x",
            "a@",
        ] {
            let made = SendGrid::new(
                "https://api.sendgrid.com",
                "k",
                from,
                Duration::from_secs(1),
            );
            assert!(made.is_err(), "{from:?} was accepted");
        }
    }

    #[test]
    fn rejects_unusable_api_bases_and_keys() {
        for base in [
            "",
            "api.sendgrid.com",
            "ftp://api.sendgrid.com",
            "https://x/?a=1",
        ] {
            let made = SendGrid::new(base, "k", "a@b.c", Duration::from_secs(1));
            assert!(made.is_err(), "{base:?} was accepted");
        }
        for key in ["", "  ", "bad\nkey"] {
            let made = SendGrid::new(
                "https://api.sendgrid.com",
                key,
                "a@b.c",
                Duration::from_secs(1),
            );
            assert!(made.is_err(), "{key:?} was accepted");
        }
    }

    #[test]
    fn debug_does_not_show_the_api_key() {
        let provider = SendGrid::new(
            "https://api.sendgrid.com",
            "SG.secret",
            "a@b.c",
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{provider:?}").contains("SG.secret"));
    }
}
