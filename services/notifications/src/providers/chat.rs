//! Chat: a message posted to a Slack or Microsoft Teams incoming-webhook URL (the recipient's
//! `to`). The host picks the format: Teams hosts get a MessageCard, everything else the
//! Slack format, which Mattermost, Rocket.Chat and Discord's `/slack` endpoint accept too.
//!
//! Outcomes follow the webhook provider: redirects are not followed, 410 Gone is permanent.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::webhook::{client_without_redirects, http_url, judge};
use super::{Accepted, Message, Provider, SendError, unreachable};

/// Slack refuses a section whose text is longer than this.
const SLACK_SECTION_MAX_CHARS: usize = 3000;

/// The chat provider.
#[derive(Debug)]
pub struct Chat {
    client: reqwest::Client,
}

impl Chat {
    /// A provider giving up on a chat service after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            client: client_without_redirects(timeout),
        }
    }
}

#[async_trait::async_trait]
impl Provider for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        let url = http_url(&message.to)?;
        let payload = match Format::for_host(url.host_str().unwrap_or_default()) {
            Format::Teams => teams_card(message),
            Format::Slack => slack_message(message),
        };
        let response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(payload.to_string())
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        judge(response).await
    }
}

/// The JSON a chat service takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Slack's incoming-webhook message: `text` plus `blocks`.
    Slack,
    /// A Microsoft Teams connector MessageCard.
    Teams,
}

impl Format {
    /// Teams for `*.webhook.office.com` and `*.logic.azure.com` (Workflows), Slack otherwise.
    fn for_host(host: &str) -> Self {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let under = |domain: &str| {
            host == domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        };
        if under("webhook.office.com") || under("logic.azure.com") {
            Self::Teams
        } else {
            Self::Slack
        }
    }
}

/// `{"text": "*subject*\ntext", "blocks": [one mrkdwn section]}`, with Slack's control
/// characters escaped so rendered data cannot mention `<!channel>` or forge links.
fn slack_message(message: &Message) -> Value {
    let text = if message.subject.is_empty() {
        slack_escape(&message.text)
    } else {
        format!(
            "*{}*\n{}",
            slack_escape(&message.subject),
            slack_escape(&message.text)
        )
    };
    let section: String = text.chars().take(SLACK_SECTION_MAX_CHARS).collect();
    json!({
        "text": text,
        "blocks": [{
            "type": "section",
            "text": {"type": "mrkdwn", "text": section},
        }],
    })
}

/// `&`, `<` and `>` as Slack wants them in text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A MessageCard: `summary` (required) is the subject or else the text; no `title` without a
/// subject.
fn teams_card(message: &Message) -> Value {
    let summary = if message.subject.is_empty() {
        &message.text
    } else {
        &message.subject
    };
    let mut card = json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": summary,
        "text": message.text,
    });
    if !message.subject.is_empty() {
        card["title"] = json!(message.subject);
    }
    card
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::{Method, StatusCode};

    use super::*;
    use crate::providers::test_support::{canned, closed_port_url};

    fn message(to: &str, subject: &str, text: &str) -> Message {
        Message {
            id: "ntf_02".to_owned(),
            to: to.to_owned(),
            subject: subject.to_owned(),
            text: text.to_owned(),
            html: None,
            data: json!({}),
        }
    }

    fn chat() -> Chat {
        Chat::new(Duration::from_secs(5))
    }

    #[test]
    fn teams_hosts_get_the_teams_format() {
        for host in [
            "contoso.webhook.office.com",
            "outlook.webhook.office.com",
            "webhook.office.com",
            "prod-27.westus.logic.azure.com",
            "CONTOSO.WEBHOOK.OFFICE.COM",
            "contoso.webhook.office.com.",
        ] {
            assert_eq!(Format::for_host(host), Format::Teams, "{host}");
        }
    }

    #[test]
    fn other_hosts_get_the_slack_format() {
        for host in [
            "hooks.slack.com",
            "127.0.0.1",
            "mattermost.example.com",
            "evilwebhook.office.com",
            "webhook.office.com.example.net",
            "",
        ] {
            assert_eq!(Format::for_host(host), Format::Slack, "{host}");
        }
    }

    #[test]
    fn the_teams_card_has_summary_title_and_text() {
        let card = teams_card(&message("x", "Deploy done", "All green"));
        assert_eq!(
            card,
            json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": "Deploy done",
                "title": "Deploy done",
                "text": "All green",
            })
        );
    }

    #[test]
    fn the_teams_card_without_subject_has_no_title() {
        let card = teams_card(&message("x", "", "All green"));
        assert_eq!(
            card,
            json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": "All green",
                "text": "All green",
            })
        );
    }

    #[test]
    fn slack_text_without_subject_is_just_the_text() {
        let body = slack_message(&message("x", "", "plain"));
        assert_eq!(body["text"], "plain");
        assert_eq!(body["blocks"][0]["text"]["text"], "plain");
    }

    #[test]
    fn slack_control_characters_are_escaped() {
        let body = slack_message(&message("x", "A & B", "<!channel> <http://x|y>"));
        assert_eq!(
            body["text"],
            "*A &amp; B*\n&lt;!channel&gt; &lt;http://x|y&gt;"
        );
    }

    #[test]
    fn the_slack_section_is_cut_to_slacks_limit() {
        let long = "a".repeat(4000);
        let body = slack_message(&message("x", "", &long));
        assert_eq!(body["text"].as_str().unwrap().len(), 4000);
        assert_eq!(
            body["blocks"][0]["text"]["text"].as_str().unwrap().len(),
            SLACK_SECTION_MAX_CHARS
        );
    }

    #[tokio::test]
    async fn posts_the_slack_format_to_a_non_teams_host() {
        let (base, log) = canned(StatusCode::OK, &[], "ok").await;

        let accepted = chat()
            .send(&message(
                &format!("{base}/services/T0/B0/XYZ"),
                "Order shipped",
                "On its way",
            ))
            .await
            .unwrap();

        assert_eq!(accepted.message_id, None);
        assert_eq!(accepted.response, "200 ok");
        let received = log.all();
        assert_eq!(received.len(), 1);
        let received = &received[0];
        assert_eq!(received.method, Method::POST);
        assert_eq!(received.path, "/services/T0/B0/XYZ");
        assert_eq!(
            received.headers.get("content-type").unwrap(),
            "application/json"
        );
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(
            body,
            json!({
                "text": "*Order shipped*\nOn its way",
                "blocks": [{
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": "*Order shipped*\nOn its way"},
                }],
            })
        );
    }

    #[tokio::test]
    async fn a_teams_answer_of_1_is_sent() {
        let (base, _) = canned(StatusCode::OK, &[], "1").await;
        let accepted = chat()
            .send(&message(&format!("{base}/webhookb2/abc"), "s", "t"))
            .await
            .unwrap();
        assert_eq!(accepted.response, "200 1");
    }

    #[tokio::test]
    async fn a_503_is_transient() {
        let (base, _) = canned(StatusCode::SERVICE_UNAVAILABLE, &[], "down").await;
        let error = chat().send(&message(&base, "s", "t")).await.unwrap_err();
        assert!(matches!(error, SendError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn a_400_is_permanent() {
        let (base, _) = canned(StatusCode::BAD_REQUEST, &[], "invalid_payload").await;
        let error = chat().send(&message(&base, "s", "t")).await.unwrap_err();
        assert!(
            matches!(error, SendError::Permanent(ref m) if m.contains("invalid_payload")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_410_is_permanent() {
        let (base, _) = canned(StatusCode::GONE, &[], "channel_is_archived").await;
        let error = chat().send(&message(&base, "s", "t")).await.unwrap_err();
        assert!(matches!(error, SendError::Permanent(_)), "{error}");
    }

    #[tokio::test]
    async fn a_redirect_is_permanent_and_not_followed() {
        let (base, log) = canned(
            StatusCode::MOVED_PERMANENTLY,
            &[("location", "https://elsewhere.example/")],
            "",
        )
        .await;

        let error = chat().send(&message(&base, "s", "t")).await.unwrap_err();

        assert!(matches!(error, SendError::Permanent(_)), "{error}");
        assert_eq!(log.all().len(), 1);
    }

    #[tokio::test]
    async fn a_closed_port_is_transient() {
        let error = chat()
            .send(&message(&format!("{}/hook", closed_port_url()), "s", "t"))
            .await
            .unwrap_err();

        assert!(matches!(error, SendError::Transient(_)), "{error}");
    }

    #[tokio::test]
    async fn a_recipient_that_is_not_a_url_is_permanent() {
        let error = chat()
            .send(&message("#general", "s", "t"))
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Permanent(_)), "{error}");
    }
}
