//! What notifications consumes: `notification.*` requests from every service (orders'
//! receipts and shipping updates, identity's verification and reset emails, invitations),
//! `user.registered` (the user's address, and a welcome), and `inventory.stock.low` (an alert
//! in the staff inbox). Each event queues at most one notification: its key is the event id.

use mercato_bus::{Consumer, Event, Handler};
use mercato_contracts::inventory::StockLow;
use mercato_contracts::subjects::{
    NOTIFICATION_EMAIL, NOTIFICATION_IN_APP, NOTIFICATION_PUSH, NOTIFICATION_SMS, STOCK_LOW,
    USER_REGISTERED,
};
use mercato_kernel::Context;
use mercato_store::{Tx, now_micros};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::STAFF_INBOX;
use crate::compose::{self, Send};
use crate::delivery::Sender;
use crate::domain::Channel;
use crate::links::Links;

/// Starts the consumers.
pub fn spawn_consumers(ctx: &Context, sender: &Sender, links: &Links) {
    Consumer::new(
        "notifications-requests",
        &[
            NOTIFICATION_EMAIL,
            NOTIFICATION_SMS,
            NOTIFICATION_PUSH,
            NOTIFICATION_IN_APP,
        ],
        ctx.db.clone(),
        Requests {
            sender: sender.clone(),
            links: links.clone(),
        },
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
    Consumer::new(
        "notifications-platform",
        &[USER_REGISTERED, STOCK_LOW],
        ctx.db.clone(),
        Platform {
            sender: sender.clone(),
            links: links.clone(),
        },
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
}

/// The data of a `notification.*` event.
#[derive(Debug, Deserialize)]
struct Request {
    to: Option<String>,
    user_id: Option<String>,
    template: Option<String>,
    locale: Option<String>,
    #[serde(default)]
    variables: Value,
    subject: Option<String>,
    body: Option<String>,
    category: Option<String>,
    #[serde(default)]
    urgent: bool,
}

struct Requests {
    sender: Sender,
    links: Links,
}

#[async_trait::async_trait]
impl Handler for Requests {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        let channel = match event.kind.as_str() {
            NOTIFICATION_EMAIL => Channel::Email,
            NOTIFICATION_SMS => Channel::Sms,
            NOTIFICATION_PUSH => Channel::Push,
            _ => Channel::InApp,
        };
        let request: Request = match serde_json::from_value(event.data.clone()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(event = %event.id, error = %e, "malformed notification request dropped");
                return Ok(());
            }
        };
        let send = Send {
            channel: Some(channel),
            user_id: request
                .user_id
                .or_else(|| {
                    request
                        .variables
                        .get("user_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .filter(|_| channel == Channel::InApp),
            to: request.to,
            template: request.template,
            locale: request.locale,
            data: if request.variables.is_object() {
                request.variables
            } else {
                json!({})
            },
            subject: request.subject,
            body: request.body,
            html: None,
            category: request.category,
            urgent: request.urgent,
            idempotency_key: Some(format!("event:{}", event.id)),
        };
        queue(tx, &self.links, send, &event.id).await;
        self.sender.wake();
        Ok(())
    }
}

/// Queues; a request that can never be sent (unknown template, bad address) is logged and
/// dropped rather than retried forever.
async fn queue(tx: &mut Tx, links: &Links, send: Send, event_id: &str) {
    if let Err(e) = compose::queue(tx, links, send).await {
        tracing::warn!(event = %event_id, code = e.code(), detail = e.detail(), "notification request refused");
    }
}

#[derive(Debug, Deserialize)]
struct Registered {
    user_id: String,
    email: String,
    #[serde(default)]
    name: String,
}

struct Platform {
    sender: Sender,
    links: Links,
}

#[async_trait::async_trait]
impl Handler for Platform {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        if event.kind == USER_REGISTERED {
            let user: Registered = serde_json::from_value(event.data.clone())?;
            crate::store::set_contact(tx, &user.user_id, Some(&user.email), None, now_micros())
                .await?;
            let welcome = Send {
                channel: Some(Channel::InApp),
                user_id: Some(user.user_id.clone()),
                template: Some("welcome".to_owned()),
                data: json!({"name": user.name}),
                idempotency_key: Some(format!("event:{}", event.id)),
                ..Send::default()
            };
            queue(tx, &self.links, welcome, &event.id).await;
        } else {
            let low: StockLow = serde_json::from_value(event.data.clone())?;
            let alert = Send {
                channel: Some(Channel::InApp),
                user_id: Some(STAFF_INBOX.to_owned()),
                template: Some("low_stock_alert".to_owned()),
                data: json!({"sku": low.sku, "available": low.available, "threshold": low.threshold}),
                idempotency_key: Some(format!("event:{}", event.id)),
                ..Send::default()
            };
            queue(tx, &self.links, alert, &event.id).await;
        }
        self.sender.wake();
        Ok(())
    }
}
