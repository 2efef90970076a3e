//! SMS through the Vonage (Nexmo) SMS API: `POST {base}/sms/json` with a form body `api_key`,
//! `api_secret`, `from`, `to` (digits, no `+`), `text` and `client-ref` (our message id). Vonage
//! answers 200 even when it refuses: each part of the message carries a `status`, `"0"` sent,
//! `"1"` throttled and `"5"` internal error (both transient), anything else permanent with its
//! `error-text`.

use std::time::Duration;

use mercato_kernel::config::Secret;
use serde::Deserialize;
use url::Url;

use super::{
    Accepted, Message, Provider, SendError, http_base_url, http_client, post_form, refused,
    unreachable,
};

/// The Vonage SMS provider.
pub struct Vonage {
    client: reqwest::Client,
    sms_url: Url,
    api_key: String,
    api_secret: Secret,
    from: String,
}

/// Vonage's answer to `/sms/json`.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    messages: Vec<Part>,
}

/// One part of a (possibly split) message.
#[derive(Debug, Deserialize)]
struct Part {
    status: String,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
    #[serde(rename = "error-text")]
    error_text: Option<String>,
}

impl Vonage {
    /// A provider for `api_key` sending as `from` (number or sender id) through `api_base`
    /// (`https://rest.nexmo.com`).
    pub fn new(
        api_base: &str,
        api_key: &str,
        api_secret: &str,
        from: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!api_key.trim().is_empty(), "vonage API key is empty");
        anyhow::ensure!(!api_secret.is_empty(), "vonage API secret is empty");
        anyhow::ensure!(!from.trim().is_empty(), "vonage sender is empty");
        Ok(Self {
            client: http_client(timeout),
            sms_url: endpoint(api_base, "/sms/json")?,
            api_key: api_key.trim().to_owned(),
            api_secret: api_secret.into(),
            from: from.trim().trim_start_matches('+').to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl Provider for Vonage {
    fn name(&self) -> &'static str {
        "vonage"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        let to = digits(&message.to)?;
        let form = form(&self.api_key, &self.api_secret, &self.from, to, message);
        let response = post_form(self.client.post(self.sms_url.clone()), form).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(refused(response).await);
        }
        let body = response.text().await.map_err(|e| unreachable(&e))?;
        let answer: Answer = serde_json::from_str(&body).map_err(|e| {
            // 200 without a readable status: we cannot know it was sent, so another try.
            let short: String = body.chars().take(200).collect();
            SendError::Transient(format!("unreadable answer ({e}): {short}"))
        })?;
        outcome(status.as_u16(), answer)
    }
}

/// The urlencoded request body.
fn form(api_key: &str, api_secret: &Secret, from: &str, to: &str, message: &Message) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("api_key", api_key)
        .append_pair("api_secret", api_secret.expose())
        .append_pair("from", from)
        .append_pair("to", to)
        .append_pair("text", &message.text)
        .append_pair("client-ref", &message.id);
    if !message.text.is_ascii() {
        // The default `text` type is GSM-7: accents, other scripts and emoji would arrive as
        // question marks.
        form.append_pair("type", "unicode");
    }
    form.finish()
}

/// The result of a 200 answer: sent when every part has status `"0"`.
fn outcome(http_status: u16, answer: Answer) -> Result<Accepted, SendError> {
    if answer.messages.is_empty() {
        return Err(SendError::Transient(format!(
            "{http_status}: answer lists no message"
        )));
    }
    if let Some(failed) = answer.messages.iter().find(|p| p.status != "0") {
        let reason = format!(
            "status {}: {}",
            failed.status,
            failed.error_text.as_deref().unwrap_or("no error text")
        );
        return Err(match failed.status.as_str() {
            // Throttled, internal error.
            "1" | "5" => SendError::Transient(reason),
            _ => SendError::Permanent(reason),
        });
    }
    let ids: Vec<&str> = answer
        .messages
        .iter()
        .filter_map(|p| p.message_id.as_deref())
        .collect();
    Ok(Accepted {
        message_id: ids.first().map(|id| (*id).to_owned()),
        response: format!(
            "{http_status} sent in {} part(s): {}",
            answer.messages.len(),
            ids.join(",")
        ),
    })
}

/// The recipient as Vonage wants it: the E.164 digits without `+`.
fn digits(to: &str) -> Result<&str, SendError> {
    let number = to.trim().trim_start_matches('+');
    if !number.is_empty() && number.len() <= 15 && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(number)
    } else {
        Err(SendError::Permanent(format!(
            "recipient `{to}` is not an E.164 phone number"
        )))
    }
}

/// `path` under `api_base`, which must be an absolute http(s) URL without query or fragment.
fn endpoint(api_base: &str, path: &str) -> anyhow::Result<Url> {
    let base = http_base_url(api_base, "vonage API base")?;
    let url = format!("{}{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&url).map_err(|e| anyhow::anyhow!("vonage SMS URL `{url}`: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use axum::http::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::providers::test_support::{closed_port_url, serve};

    fn sent(to: &str, ids: &[&str]) -> String {
        let parts: Vec<_> = ids
            .iter()
            .map(|id| {
                json!({
                    "to": to,
                    "message-id": id,
                    "status": "0",
                    "remaining-balance": "3.14159265",
                    "message-price": "0.03330000",
                    "network": "12345"
                })
            })
            .collect();
        json!({"message-count": ids.len().to_string(), "messages": parts}).to_string()
    }

    fn refused_with(status: &str, text: &str) -> String {
        json!({
            "message-count": "1",
            "messages": [{"status": status, "error-text": text}]
        })
        .to_string()
    }

    fn message(to: &str, text: &str) -> Message {
        Message {
            id: "ntf_1".into(),
            to: to.into(),
            subject: String::new(),
            text: text.into(),
            html: None,
            data: json!({}),
        }
    }

    fn vonage(base: &str) -> Vonage {
        Vonage::new(base, "key1", "s3cret", "Mercato", Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn posts_the_form_and_returns_the_message_id() {
        let (base, seen) = serve(|req| {
            (
                StatusCode::OK,
                sent(&req.form()["to"], &["0A0000000123ABCD1"]),
            )
        })
        .await;

        let accepted = vonage(&base)
            .send(&message("+447700900000", "Order #42 shipped & on its way"))
            .await
            .unwrap();

        assert_eq!(accepted.message_id.as_deref(), Some("0A0000000123ABCD1"));
        assert_eq!(
            accepted.response,
            "200 sent in 1 part(s): 0A0000000123ABCD1"
        );
        let seen = seen.all();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/sms/json");
        assert_eq!(
            seen[0].header("content-type"),
            "application/x-www-form-urlencoded"
        );
        let expected: HashMap<String, String> = [
            ("api_key", "key1"),
            ("api_secret", "s3cret"),
            ("from", "Mercato"),
            ("to", "447700900000"),
            ("text", "Order #42 shipped & on its way"),
            ("client-ref", "ntf_1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(seen[0].form(), expected);
    }

    #[tokio::test]
    async fn non_ascii_text_is_sent_as_unicode_and_parts_are_listed() {
        let (base, seen) =
            serve(|req| (StatusCode::OK, sent(&req.form()["to"], &["0A01", "0A02"]))).await;

        let accepted = vonage(&base)
            .send(&message("447700900000", "Заказ отправлен 📦"))
            .await
            .unwrap();

        assert_eq!(accepted.message_id.as_deref(), Some("0A01"));
        assert_eq!(accepted.response, "200 sent in 2 part(s): 0A01,0A02");
        let form = seen.all()[0].form();
        assert_eq!(form["type"], "unicode");
        assert_eq!(form["text"], "Заказ отправлен 📦");
    }

    #[tokio::test]
    async fn throttling_and_internal_errors_are_transient() {
        for (status, text) in [("1", "Throughput Rate Exceeded"), ("5", "Internal Error")] {
            let (base, _) = serve(move |_| (StatusCode::OK, refused_with(status, text))).await;

            let result = vonage(&base).send(&message("+447700900000", "hi")).await;

            assert!(
                matches!(&result, Err(SendError::Transient(e)) if e.contains(text)),
                "{status}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn other_statuses_are_permanent_with_the_error_text() {
        for (status, text) in [
            ("2", "Missing to param"),
            ("4", "Bad Credentials"),
            ("6", "Invalid Message"),
            ("29", "Non-Whitelisted Destination"),
        ] {
            let (base, _) = serve(move |_| (StatusCode::OK, refused_with(status, text))).await;

            let result = vonage(&base).send(&message("+447700900000", "hi")).await;

            match result {
                Err(SendError::Permanent(e)) => {
                    assert_eq!(e, format!("status {status}: {text}"));
                }
                other => panic!("status {status}: expected permanent, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn http_rate_limits_and_server_errors_are_transient() {
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
        ] {
            let (base, _) = serve(move |_| (status, "busy")).await;

            let result = vonage(&base).send(&message("+447700900000", "hi")).await;

            assert!(
                matches!(&result, Err(SendError::Transient(e)) if e.starts_with(status.as_str())),
                "{status}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_recipient_that_is_not_a_number_is_permanent_and_not_sent() {
        let (base, seen) = serve(|_| (StatusCode::OK, sent("1", &["x"]))).await;

        for to in [
            "",
            "+",
            "+44 7700 900000",
            "user@example.com",
            "+1234567890123456",
        ] {
            let result = vonage(&base).send(&message(to, "hi")).await;
            assert!(
                matches!(result, Err(SendError::Permanent(_))),
                "{to}: {result:?}"
            );
        }
        assert!(seen.all().is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_answer_is_transient() {
        let (base, _) = serve(|_| (StatusCode::OK, "<html>gateway</html>")).await;

        let result = vonage(&base).send(&message("+447700900000", "hi")).await;

        assert!(matches!(result, Err(SendError::Transient(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_transient() {
        let result = vonage(&closed_port_url())
            .send(&message("+447700900000", "hi"))
            .await;

        assert!(matches!(result, Err(SendError::Transient(_))), "{result:?}");
    }

    #[test]
    fn rejects_bad_configuration() {
        let new = |base: &str, key: &str| {
            Vonage::new(base, key, "s3cret", "Mercato", Duration::from_secs(1))
        };
        assert!(new("https://rest.nexmo.com", "key1").is_ok());
        assert!(new("rest.nexmo.com", "key1").is_err());
        assert!(new("file:///etc/passwd", "key1").is_err());
        assert!(new("https://rest.nexmo.com#x", "key1").is_err());
        assert!(new("https://rest.nexmo.com", " ").is_err());
    }
}
