//! Email delivered into the service's own database when no SMTP server or email API is
//! configured (`mercato up` out of the box): viewable at `/admin/mail`, never dropped.

use mercato_store::{Db, now_micros};

use super::{Accepted, Message, Provider, SendError};
use crate::store::{self, MailRow};

/// The local mailbox.
pub struct LocalMailbox {
    db: Db,
}

impl LocalMailbox {
    /// A mailbox in `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl Provider for LocalMailbox {
    fn name(&self) -> &'static str {
        "mailbox"
    }

    async fn send(&self, message: &Message) -> Result<Accepted, SendError> {
        let row = MailRow {
            id: mercato_kernel::id::new_id("mail"),
            notification_id: message.id.clone(),
            recipient: message.to.clone(),
            subject: message.subject.clone(),
            text_body: message.text.clone(),
            html_body: message.html.clone(),
            created_at: now_micros(),
        };
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        store::insert_mail(&mut conn, &row)
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        Ok(Accepted {
            message_id: Some(row.id),
            response: "stored in the local mailbox".to_owned(),
        })
    }
}
