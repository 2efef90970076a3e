//! In-app: the notification row itself is the inbox entry; delivering it announces it to the
//! user's open streams (`/api/v1/notifications/inbox/stream`).

use tokio::sync::broadcast;

use super::{Accepted, Message, Provider, SendError};

/// What an inbox stream receives: the user and the notification id.
#[derive(Debug, Clone)]
pub struct InboxEvent {
    /// `usr_…`.
    pub user_id: String,
    /// `ntf_…`.
    pub notification_id: String,
    /// Title.
    pub subject: String,
    /// Text.
    pub body: String,
}

/// The in-app provider.
pub struct InApp {
    events: broadcast::Sender<InboxEvent>,
}

impl InApp {
    /// A provider announcing on `events`.
    pub fn new(events: broadcast::Sender<InboxEvent>) -> Self {
        Self { events }
    }
}

#[async_trait::async_trait]
impl Provider for InApp {
    fn name(&self) -> &'static str {
        "in_app"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        // No stream listening is fine: the inbox keeps it.
        let _ = self.events.send(InboxEvent {
            user_id: message.to.clone(),
            notification_id: message.id.clone(),
            subject: message.subject.clone(),
            body: message.text.clone(),
        });
        Ok(Accepted {
            message_id: Some(message.id.clone()),
            response: "in the inbox".to_owned(),
        })
    }
}
