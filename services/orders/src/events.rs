//! What orders publishes (`order.*`, the receipt email, audit entries), always through the
//! outbox in the transaction of the change, and what it consumes: `command.checkout` places
//! an order, `payment.*` wakes an order held for a payment review.

use mercato_bus::{Consumer, Event, Handler, enqueue};
use mercato_contracts::orders::{CheckoutCommand, OrderEvent, OrderEventLine};
use mercato_contracts::payments::PaymentSummary;
use mercato_contracts::subjects::{
    ANALYTICS_AUDIT, COMMAND_CHECKOUT, NOTIFICATION_EMAIL, PAYMENT_FAILED, PAYMENT_SUCCEEDED,
};
use mercato_kernel::ApiError;
use std::time::Duration;

use mercato_store::{Tx, now_micros};
use serde_json::json;

use crate::checkout::{Checkout, CheckoutError, Order, PaymentMethod};
use crate::store::{LineRow, OrderRow};

/// The `order.*` data of an order as it is.
pub fn order_event(order: &OrderRow, lines: &[LineRow], reason: Option<&str>) -> OrderEvent {
    OrderEvent {
        id: order.id.clone(),
        number: order.number.clone(),
        status: order.status.clone(),
        customer_id: order.customer_id.clone(),
        email: order.email.clone(),
        currency: order.currency.clone(),
        total: order.total,
        amount_refunded: order.amount_refunded,
        lines: lines
            .iter()
            .map(|l| OrderEventLine {
                sku: l.sku.clone(),
                title: l.title.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price,
                total: l.total,
            })
            .collect(),
        reason: reason.map(str::to_owned),
        carrier: order.carrier.clone(),
        tracking_number: order.tracking_number.clone(),
    }
}

/// Enqueues `subject` about `order`, and an audit entry of who did it.
pub async fn publish(
    tx: &mut Tx,
    subject: &str,
    order: &OrderRow,
    lines: &[LineRow],
    reason: Option<&str>,
    actor: &str,
) -> Result<(), ApiError> {
    let data = order_event(order, lines, reason);
    let event = Event::new(crate::SOURCE, subject, &data)
        .map_err(ApiError::internal)?
        .with_subject(order.id.clone());
    enqueue(tx, &event).await.map_err(ApiError::internal)?;
    let audit = json!({
        "action": subject,
        "actor": actor,
        "resource": order.id,
        "properties": {"number": order.number, "status": order.status, "total": order.total,
                       "currency": order.currency, "reason": reason},
    });
    let audit = Event::new(crate::SOURCE, ANALYTICS_AUDIT, audit)
        .map_err(ApiError::internal)?
        .with_subject(order.id.clone());
    enqueue(tx, &audit).await.map_err(ApiError::internal)
}

/// Enqueues an email to the buyer with `template` (`order_receipt`, `order_shipped`, …).
pub async fn email(
    tx: &mut Tx,
    template: &str,
    order: &OrderRow,
    lines: &[LineRow],
) -> Result<(), ApiError> {
    let data = json!({
        "to": order.email,
        "template": template,
        "variables": order_event(order, lines, None),
    });
    let event = Event::new(crate::SOURCE, NOTIFICATION_EMAIL, data)
        .map_err(ApiError::internal)?
        .with_subject(order.id.clone());
    enqueue(tx, &event).await.map_err(ApiError::internal)
}

/// Starts the consumers.
pub fn spawn_consumers(ctx: &mercato_kernel::Context) {
    Consumer::new(
        "orders-commands",
        &[COMMAND_CHECKOUT],
        ctx.db.clone(),
        CommandRecorder,
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
    Consumer::new(
        "orders-payments",
        &[PAYMENT_SUCCEEDED, PAYMENT_FAILED],
        ctx.db.clone(),
        PaymentHandler,
    )
    .spawn(&ctx.bus, ctx.shutdown.clone(), &ctx.tasks);
}

/// Records `command.checkout` events for the worker. Placing the order here would write to
/// the database on a second connection while the consumer's transaction is open, which a
/// single-writer SQLite cannot do.
struct CommandRecorder;

#[async_trait::async_trait]
impl Handler for CommandRecorder {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        crate::store::insert_command(tx, &event.id, &event.data.to_string(), now_micros()).await?;
        Ok(())
    }
}

/// Tries of a command whose services stay unavailable before it is given up.
const MAX_COMMAND_ATTEMPTS: i64 = 100;

/// Starts the worker: at once and then every `ORDERS_RESUME_INTERVAL_MS`, it resumes the
/// unfinished checkouts that are due (all of them the first time: no driver of this process
/// can be running yet) and carries out the recorded checkout commands.
pub fn spawn_worker(ctx: &mercato_kernel::Context, checkout: &Checkout) {
    let checkout = checkout.clone();
    let shutdown = ctx.shutdown.clone();
    let period = Duration::from_millis(ctx.config.orders_resume_interval_ms.max(10));
    ctx.tasks.spawn(async move {
        let mut all = true;
        loop {
            match checkout.saga().resume(all).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sagas = n, "unfinished checkouts resumed"),
                Err(e) => tracing::warn!(error = %e, "looking for unfinished checkouts failed"),
            }
            all = false;
            if let Err(e) = run_commands(&checkout).await {
                tracing::warn!(error = %e, "carrying out checkout commands failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
        }
    });
}

async fn run_commands(checkout: &Checkout) -> anyhow::Result<()> {
    if checkout.saga().is_halted() {
        return Ok(());
    }
    let db = checkout.db();
    let commands = crate::store::open_commands(&mut *db.pool().acquire().await?, 50).await?;
    for (id, payload, attempts) in commands {
        let outcome = match command_order(&payload) {
            Ok((customer, key, order)) => {
                checkout
                    .place(
                        customer.as_deref(),
                        &format!("command:{}", key.unwrap_or_else(|| id.clone())),
                        order,
                    )
                    .await
            }
            Err(e) => Err(CheckoutError::Refused(ApiError::bad_request(
                "invalid_command",
                e.to_string(),
            ))),
        };
        let mut conn = db.pool().acquire().await?;
        match outcome {
            Ok(order) => {
                crate::store::finish_command(&mut conn, &id, Some(&order.id), None, now_micros())
                    .await?;
                drop(conn);
                checkout.saga().drive(&order.id).await;
            }
            Err(CheckoutError::Refused(problem)) => {
                tracing::warn!(command = %id, code = problem.code(), detail = problem.detail(), "command.checkout refused");
                let why = format!("{}: {}", problem.code(), problem.detail());
                crate::store::finish_command(&mut conn, &id, None, Some(&why), now_micros())
                    .await?;
            }
            Err(CheckoutError::Transient(why)) if attempts + 1 >= MAX_COMMAND_ATTEMPTS => {
                crate::store::finish_command(&mut conn, &id, None, Some(&why), now_micros())
                    .await?;
            }
            Err(CheckoutError::Transient(why)) => {
                crate::store::retry_command(&mut conn, &id, &why).await?;
            }
        }
    }
    Ok(())
}

/// The buyer, the command's own key and the order a recorded command asks for.
fn command_order(payload: &str) -> anyhow::Result<(Option<String>, Option<String>, Order)> {
    let command: CheckoutCommand = serde_json::from_str(payload)?;
    let order = Order {
        cart_id: command.cart_id,
        email: command.email,
        shipping_address: serde_json::from_value(command.shipping_address)?,
        billing_address: command
            .billing_address
            .map(serde_json::from_value)
            .transpose()?,
        payment_method: PaymentMethod::Token(command.payment_token),
    };
    Ok((command.customer_id, command.idempotency_key, order))
}

/// Makes an order waiting for its payment's review due at once when the payment settles.
struct PaymentHandler;

#[async_trait::async_trait]
impl Handler for PaymentHandler {
    async fn handle(&self, event: &Event, tx: &mut Tx) -> anyhow::Result<()> {
        let payment: PaymentSummary = serde_json::from_value(event.data.clone())?;
        if let Some(order_id) = payment.metadata.get("order_id") {
            crate::store::wake_review(tx, order_id, &payment.id).await?;
        }
        Ok(())
    }
}
