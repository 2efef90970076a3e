//! Email over SMTP (lettre): a pooled async transport from `SMTP_URL` (`smtp://host:port` with
//! `?tls=required` for STARTTLS or `?tls=opportunistic`, `smtps://` for implicit TLS, user and
//! password in the URL), multipart messages with a text and an HTML part.

use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};

use super::{Accepted, Message, Provider, SendError};

/// The SMTP provider.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Smtp {
    /// A provider sending through `url` as `from` (`Name <address>`).
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("SMTP_URL is not usable: {e}"))?
            .build();
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("SMTP_FROM `{from}` is not a mailbox: {e}"))?;
        Ok(Self { transport, from })
    }

    fn build(&self, message: &Message) -> Result<Email, SendError> {
        let to: Mailbox = message
            .to
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient: {e}")))?;
        let builder = Email::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .message_id(Some(format!("<{}@mercato>", message.id)));
        let email = match &message.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                html.clone(),
            )),
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(message.text.clone()),
        };
        email.map_err(|e| SendError::Permanent(format!("building the message: {e}")))
    }
}

#[async_trait::async_trait]
impl Provider for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        let email = self.build(message)?;
        match self.transport.send(email).await {
            Ok(response) => Ok(Accepted {
                message_id: Some(format!("<{}@mercato>", message.id)),
                response: format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ),
            }),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}
