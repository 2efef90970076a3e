//! SMS through Twilio Programmable Messaging: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`
//! with HTTP Basic auth (account SID, auth token) and a form body `To`, `Body` and `From` — or
//! `MessagingServiceSid` when the sender is a messaging service (`MG…`). Twilio answers 201 with
//! the message resource, whose `sid` is the provider id; errors carry `code` and `message`
//! (21211 invalid number, 21614 not a mobile number: both permanent, like every other 4xx).

use std::time::Duration;

use mercato_kernel::config::Secret;
use serde::Deserialize;
use url::Url;

use super::{
    Accepted, Message, Provider, SendError, http_base_url, http_client, post_form, refused,
};

/// The Twilio SMS provider.
pub struct Twilio {
    client: reqwest::Client,
    messages_url: Url,
    account_sid: String,
    auth_token: Secret,
    sender: Sender,
    status_callback: Option<String>,
}

/// Who the message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sender {
    /// A phone number or alphanumeric sender id (`From`).
    From(String),
    /// A messaging service, which picks the number itself (`MessagingServiceSid`).
    Service(String),
}

impl Sender {
    fn parse(from: &str) -> Self {
        // A messaging service SID is `MG` and 32 hex digits; anything else is a number or name.
        let is_service = from.len() == 34
            && from.starts_with("MG")
            && from[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if is_service {
            Self::Service(from.to_owned())
        } else {
            Self::From(from.to_owned())
        }
    }

    fn field(&self) -> (&'static str, &str) {
        match self {
            Self::From(number) => ("From", number),
            Self::Service(sid) => ("MessagingServiceSid", sid),
        }
    }
}

/// The part of Twilio's message resource we keep.
#[derive(Deserialize)]
struct Created {
    sid: String,
    #[serde(default)]
    status: Option<String>,
}

impl Twilio {
    /// A provider for `account_sid` sending from `from` (E.164 number, sender id or `MG…` SID)
    /// through `api_base` (`https://api.twilio.com`).
    pub fn new(
        api_base: &str,
        account_sid: &str,
        auth_token: &str,
        from: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !account_sid.is_empty() && account_sid.bytes().all(|b| b.is_ascii_alphanumeric()),
            "twilio account SID `{account_sid}` is not a SID"
        );
        anyhow::ensure!(!auth_token.is_empty(), "twilio auth token is empty");
        anyhow::ensure!(!from.trim().is_empty(), "twilio sender is empty");
        let messages_url = endpoint(
            api_base,
            &format!("/2010-04-01/Accounts/{account_sid}/Messages.json"),
        )?;
        Ok(Self {
            client: http_client(timeout),
            messages_url,
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.into(),
            sender: Sender::parse(from.trim()),
            status_callback: None,
        })
    }

    /// Asks Twilio to report each message's fate (`delivered`, `undelivered`, `failed`) to
    /// `url`, signed with the auth token (see [`signature`]).
    pub fn with_status_callback(mut self, url: String) -> Self {
        self.status_callback = Some(url);
        self
    }
}

/// Twilio's request signature (`X-Twilio-Signature`): base64 of HMAC-SHA1 under the auth token
/// of the full URL followed by every form parameter's name and value, sorted by name.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = match hmac::Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[async_trait::async_trait]
impl Provider for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        let (sender_field, sender) = self.sender.field();
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("To", &message.to)
                .append_pair("Body", &message.text)
                .append_pair(sender_field, sender);
            if let Some(callback) = &self.status_callback {
                form.append_pair("StatusCallback", callback);
            }
            form.finish()
        };
        let request = self
            .client
            .post(self.messages_url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        let response = post_form(request, form).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(refused(response).await);
        }
        // 2xx means Twilio queued the message: an unreadable body must not make it resend.
        let body = response.text().await.unwrap_or_default();
        let created = serde_json::from_str::<Created>(&body).ok();
        let response = match &created {
            Some(Created {
                sid,
                status: Some(state),
            }) => format!("{} {sid} {state}", status.as_u16()),
            Some(Created { sid, status: None }) => format!("{} {sid}", status.as_u16()),
            None => format!(
                "{} {}",
                status.as_u16(),
                body.chars().take(200).collect::<String>()
            ),
        };
        Ok(Accepted {
            message_id: created.map(|c| c.sid),
            response,
        })
    }
}

/// `path` under `api_base`, which must be an absolute http(s) URL without query or fragment.
fn endpoint(api_base: &str, path: &str) -> anyhow::Result<Url> {
    let base = http_base_url(api_base, "twilio API base")?;
    let url = format!("{}{path}", base.as_str().trim_end_matches('/'));
    Url::parse(&url).map_err(|e| anyhow::anyhow!("twilio messages URL `{url}`: {e}"))
}

#[cfg(test)]
mod signature_tests {
    use super::signature;

    #[test]
    fn signatures_match_twilios_documented_example() {
        // The example of Twilio's "Webhooks security" page.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use axum::http::StatusCode;
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use crate::providers::test_support::{closed_port_url, serve};

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "auth-token";
    const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

    /// What Twilio answers 201 with: a message resource longer than the attempt log keeps.
    fn created(sid: &str, to: &str, body: &str) -> String {
        json!({
            "account_sid": SID,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
            "date_sent": null,
            "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": "+15005550006",
            "messaging_service_sid": null,
            "num_media": "0",
            "num_segments": "1",
            "price": null,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}/Media.json")
            },
            "to": to,
            "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json")
        })
        .to_string()
    }

    fn twilio_error(code: u32, message: &str, status: u16) -> String {
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status
        })
        .to_string()
    }

    fn message(to: &str) -> Message {
        Message {
            id: "ntf_1".into(),
            to: to.into(),
            subject: "Your order".into(),
            text: "Order #42 shipped & on its way".into(),
            html: None,
            data: json!({}),
        }
    }

    fn twilio(base: &str, from: &str) -> Twilio {
        Twilio::new(base, SID, TOKEN, from, Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn posts_the_form_with_basic_auth_and_returns_the_message_sid() {
        let (base, seen) = serve(|_| {
            // Longer than the 500 characters `classify` keeps: the sid must still be read.
            let long_body = "x".repeat(600);
            (
                StatusCode::CREATED,
                created(
                    "SM0123456789abcdef0123456789abcdef",
                    "+14155550100",
                    &long_body,
                ),
            )
        })
        .await;

        let accepted = twilio(&base, "+15005550006")
            .send(&message("+14155550100"))
            .await
            .unwrap();

        assert_eq!(
            accepted.message_id.as_deref(),
            Some("SM0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            accepted.response,
            "201 SM0123456789abcdef0123456789abcdef queued"
        );
        let seen = seen.all();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(
            req.path,
            format!("/2010-04-01/Accounts/{SID}/Messages.json")
        );
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
        assert_eq!(req.header("authorization"), format!("Basic {credentials}"));
        assert_eq!(
            req.header("content-type"),
            "application/x-www-form-urlencoded"
        );
        let expected: HashMap<String, String> = [
            ("To", "+14155550100"),
            ("Body", "Order #42 shipped & on its way"),
            ("From", "+15005550006"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(req.form(), expected);
    }

    #[tokio::test]
    async fn sends_through_the_messaging_service_when_from_is_an_mg_sid() {
        let (base, seen) =
            serve(|_| (StatusCode::CREATED, created("SM1", "+14155550100", "hi"))).await;

        twilio(&base, SERVICE)
            .send(&message("+14155550100"))
            .await
            .unwrap();

        let form = seen.all()[0].form();
        assert_eq!(
            form.get("MessagingServiceSid").map(String::as_str),
            Some(SERVICE)
        );
        assert!(!form.contains_key("From"));
    }

    #[tokio::test]
    async fn invalid_or_unreachable_numbers_are_permanent() {
        let (base, _) = serve(|req| {
            let (code, text) = if req.form()["To"] == "+1555" {
                (21211, "The 'To' number +1555 is not a valid phone number.")
            } else {
                (21614, "'To' number is not a valid mobile number")
            };
            (StatusCode::BAD_REQUEST, twilio_error(code, text, 400))
        })
        .await;
        let provider = twilio(&base, "+15005550006");

        for (to, code) in [("+1555", "21211"), ("+15005550009", "21614")] {
            match provider.send(&message(to)).await {
                Err(SendError::Permanent(e)) => {
                    assert!(e.starts_with("400"), "{e}");
                    assert!(e.contains(code), "{e}");
                }
                other => panic!("expected a permanent error for {to}, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn bad_credentials_are_permanent() {
        let (base, _) = serve(|_| {
            (
                StatusCode::UNAUTHORIZED,
                twilio_error(20003, "Authenticate", 401),
            )
        })
        .await;

        let result = twilio(&base, "+15005550006")
            .send(&message("+14155550100"))
            .await;

        assert!(
            matches!(&result, Err(SendError::Permanent(e)) if e.contains("20003")),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn rate_limits_and_server_errors_are_transient() {
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            let (base, _) = serve(move |_| {
                (
                    status,
                    twilio_error(20429, "Too Many Requests", status.as_u16()),
                )
            })
            .await;

            let result = twilio(&base, "+15005550006")
                .send(&message("+14155550100"))
                .await;

            assert!(
                matches!(&result, Err(SendError::Transient(e)) if e.starts_with(status.as_str())),
                "{status}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_transient() {
        let result = twilio(&closed_port_url(), "+15005550006")
            .send(&message("+14155550100"))
            .await;

        assert!(matches!(result, Err(SendError::Transient(_))), "{result:?}");
    }

    #[test]
    fn rejects_bad_configuration() {
        let new = |base: &str, sid: &str| {
            Twilio::new(base, sid, TOKEN, "+15005550006", Duration::from_secs(1))
        };
        assert!(new("https://api.twilio.com", SID).is_ok());
        assert!(new("https://proxy.example/twilio/", SID).is_ok());
        assert!(new("api.twilio.com", SID).is_err());
        assert!(new("ftp://api.twilio.com", SID).is_err());
        assert!(new("https://api.twilio.com?x=1", SID).is_err());
        assert!(new("https://api.twilio.com", "AC1/../../x").is_err());
        assert!(new("https://api.twilio.com", "").is_err());
    }

    #[test]
    fn only_an_mg_sid_is_a_messaging_service() {
        assert_eq!(Sender::parse(SERVICE), Sender::Service(SERVICE.into()));
        assert_eq!(
            Sender::parse("MGM Resorts"),
            Sender::From("MGM Resorts".into())
        );
        assert_eq!(
            Sender::parse("+15005550006"),
            Sender::From("+15005550006".into())
        );
    }
}
