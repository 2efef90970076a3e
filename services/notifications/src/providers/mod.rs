//! Delivery providers: one trait, one adapter per protocol. A channel has an ordered list of
//! providers; a transient failure of one moves the message to the next (failover), a
//! permanent one fails it.

pub mod apns;
pub mod chat;
pub mod fcm;
pub mod in_app;
pub mod mailbox;
pub mod sendgrid;
pub mod smtp;
#[cfg(test)]
pub(crate) mod test_support;
pub mod twilio;
pub mod vonage;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::domain::Channel;

/// One message, rendered, on its way to one recipient.
#[derive(Debug, Clone)]
pub struct Message {
    /// `ntf_…`: providers pass it on as their idempotency or reference key.
    pub id: String,
    /// Email address, phone number (E.164), device token, user id or URL, by channel.
    pub to: String,
    /// Subject (email), title (push, chat).
    pub subject: String,
    /// Plain text body.
    pub text: String,
    /// HTML body (email).
    pub html: Option<String>,
    /// The data the message was rendered from (webhooks send it).
    pub data: Value,
}

/// What a provider answered for a message it accepted.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    /// The provider's id for the message.
    pub message_id: Option<String>,
    /// The provider's answer, shortened, for the attempt log.
    pub response: String,
}

/// Why a provider did not take a message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// It may work later or elsewhere: a timeout, a 5xx, a 429, a refused connection.
    #[error("transient: {0}")]
    Transient(String),
    /// It will not work anywhere: a bad address, a 4xx the provider explains.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// A delivery adapter.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Its name in attempts and configuration, e.g. `smtp`, `twilio`.
    fn name(&self) -> &'static str;
    /// Sends one message.
    async fn send(&self, message: &Message) -> Result<Accepted, SendError>;
}

/// The providers of each channel, in failover order.
#[derive(Clone, Default)]
pub struct Providers {
    by_channel: HashMap<Channel, Vec<Arc<dyn Provider>>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: HashMap<_, Vec<_>> = self
            .by_channel
            .iter()
            .map(|(c, ps)| (c.as_str(), ps.iter().map(|p| p.name()).collect()))
            .collect();
        f.debug_struct("Providers")
            .field("by_channel", &names)
            .finish()
    }
}

impl Providers {
    /// Adds `provider` after the channel's others.
    pub fn add(&mut self, channel: Channel, provider: Arc<dyn Provider>) {
        self.by_channel.entry(channel).or_default().push(provider);
    }

    /// The channel's providers, in order (empty when none is configured).
    pub fn of(&self, channel: Channel) -> &[Arc<dyn Provider>] {
        self.by_channel.get(&channel).map_or(&[], Vec::as_slice)
    }
}

/// The HTTP client every HTTP adapter shares: a bounded timeout, rustls.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

/// Classifies an HTTP answer: 2xx accepted, 429/5xx transient, other 4xx permanent.
pub async fn classify(response: reqwest::Response) -> Result<(u16, String), SendError> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let short: String = body.chars().take(500).collect();
    if status.is_success() {
        Ok((status.as_u16(), short))
    } else if status.as_u16() == 429 || status.is_server_error() {
        Err(SendError::Transient(format!("{status}: {short}")))
    } else {
        Err(SendError::Permanent(format!("{status}: {short}")))
    }
}

/// A request that got no answer: always transient.
pub fn unreachable(e: &reqwest::Error) -> SendError {
    SendError::Transient(format!("no answer: {e}"))
}

/// The error [`classify`] gives a non-2xx answer (with the provider's explanation in its body).
pub(crate) async fn refused(response: reqwest::Response) -> SendError {
    match classify(response).await {
        Err(e) => e,
        // Not reached: only non-2xx answers come here.
        Ok((status, body)) => SendError::Transient(format!("{status}: {body}")),
    }
}

/// Sends `request` with the urlencoded `form` as its body.
pub(crate) async fn post_form(
    request: reqwest::RequestBuilder,
    form: String,
) -> Result<reqwest::Response, SendError> {
    request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .map_err(|e| unreachable(&e))
}

/// `url` if it is an absolute http(s) URL without query or fragment; `what` names it in errors.
pub(crate) fn http_base_url(url: &str, what: &str) -> anyhow::Result<url::Url> {
    let parsed =
        url::Url::parse(url).map_err(|e| anyhow::anyhow!("{what} `{url}` is not a URL: {e}"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https")
            && parsed.host().is_some()
            && parsed.query().is_none()
            && parsed.fragment().is_none(),
        "{what} `{url}` is not an http(s) URL without query"
    );
    Ok(parsed)
}
