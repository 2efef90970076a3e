//! The checkout saga (DESIGN.md §5): `pending` → reserve stock → create the payment intent →
//! charge it → commit the stock → `paid`; on a refusal anywhere, release the stock, cancel or
//! refund the payment and end `cancelled` with the reason; on a payment review, `on_hold`.
//!
//! Each step's outcome is persisted (with `saga_version` bumped) before the next call, and
//! every call carries an idempotency key derived from the order (`ord_…:reserve`,
//! `ord_…:payment`, `ord_…:process`), so a step repeated after a crash, by the resumer or by
//! a second driver reserves and charges once. Drivers race safely: a step's result is only
//! written if the version is still the one the driver read, and the loser stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mercato_contracts::subjects::{ORDER_CANCELLED, ORDER_PAID};
use mercato_kernel::client::CallError;
use mercato_kernel::{ApiError, Config};
use mercato_store::{Db, Tx, now_micros};
use serde_json::Value;

use crate::clients::{Clients, NewPayment, Payment};
use crate::domain::{Address, Status, Step};
use crate::events;
use crate::store::{self, HistoryRow, OrderRow, StepChange};

/// Longest a review is waited for between two looks at the payment.
const REVIEW_POLL: Duration = Duration::from_secs(30);
/// Longest pause between two tries of an undo.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Most steps one drive takes (a saga has at most six; retries add a few).
const MAX_ROUNDS: usize = 64;

/// Drives checkout sagas; cheap to clone.
#[derive(Clone)]
pub struct Saga {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clients: Clients,
    config: Arc<Config>,
    halt_after: Option<Step>,
    halted: AtomicBool,
}

/// What a step asks of the driver next.
enum Flow {
    /// Take the next step now.
    Continue,
    /// Stop driving: the saga waits (a review) or another driver took it.
    Stop,
}

/// Why a step did not complete.
enum StepError {
    /// Worth another try later.
    Transient(String),
    /// The order cannot go on: undo it, with this reason.
    Refused(String),
    /// This service's own failure (database).
    Internal(anyhow::Error),
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<mercato_store::StoreError> for StepError {
    fn from(e: mercato_store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<ApiError> for StepError {
    fn from(e: ApiError) -> Self {
        Self::Internal(anyhow::anyhow!("{}: {}", e.code(), e.detail()))
    }
}

fn call_error(e: CallError, what: &str) -> StepError {
    if e.is_transient() {
        StepError::Transient(format!("{what}: {e}"))
    } else {
        let code = e.code().unwrap_or("refused").to_owned();
        match e {
            CallError::Refused { detail, .. } => StepError::Refused(format!("{code}: {detail}")),
            other => StepError::Refused(format!("{what}: {other}")),
        }
    }
}

impl Saga {
    /// A driver over the orders database; fails on an unknown `ORDERS_SAGA_CRASH_AFTER`.
    pub fn new(db: Db, clients: Clients, config: Arc<Config>) -> anyhow::Result<Self> {
        let halt_after = match config.orders_saga_crash_after.as_deref() {
            None | Some("") => None,
            Some(name) => Some(Step::parse(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "ORDERS_SAGA_CRASH_AFTER=`{name}` is not a step (created, reserved, \
                     payment_created, charged)"
                )
            })?),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                clients,
                config,
                halt_after,
                halted: AtomicBool::new(false),
            }),
        })
    }

    /// How long a driver keeps a saga before the resumer may take it up: longer than the
    /// slowest call it makes.
    pub fn lease_micros(&self) -> i64 {
        let ms = self
            .inner
            .config
            .mercato_service_timeout_ms
            .saturating_add(5_000);
        i64::try_from(ms).unwrap_or(i64::MAX / 1000) * 1000
    }

    /// Whether the test hook stopped every driver of this process.
    pub fn is_halted(&self) -> bool {
        self.inner.halted.load(Ordering::SeqCst)
    }

    /// Drives order `id`'s saga as far as it goes now. Failures are persisted on the order
    /// (and logged); the resumer takes it up again.
    pub async fn drive(&self, id: &str) {
        if let Err(e) = self.run(id).await {
            tracing::error!(order = %id, error = %e, "checkout saga failed; it will be resumed");
        }
    }

    /// Drives the unfinished sagas that are due (`all`: every unfinished one).
    pub async fn resume(&self, all: bool) -> anyhow::Result<usize> {
        if self.is_halted() {
            return Ok(0);
        }
        let ids = store::due_sagas(
            &mut *self.inner.db.pool().acquire().await?,
            now_micros(),
            all,
            500,
        )
        .await?;
        for id in &ids {
            self.drive(id).await;
        }
        Ok(ids.len())
    }

    async fn load(&self, id: &str) -> Result<Option<OrderRow>, StepError> {
        Ok(store::find_order(&mut *self.inner.db.pool().acquire().await?, id).await?)
    }

    async fn run(&self, id: &str) -> anyhow::Result<()> {
        for _ in 0..MAX_ROUNDS {
            if self.is_halted() {
                return Ok(());
            }
            let Some(order) = self.load(id).await.map_err(into_anyhow)? else {
                return Ok(());
            };
            let step = order.step();
            let outcome = match step {
                Step::Done => return Ok(()),
                Step::Created => self.reserve(&order).await,
                Step::Reserved => self.create_payment(&order).await,
                Step::PaymentCreated => self.process(&order).await,
                Step::Charged => self.settle_paid(&order).await,
                Step::Review => self.check_review(&order).await,
                Step::Compensating => self.compensate(&order).await,
            };
            match outcome {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return Ok(()),
                Err(StepError::Refused(reason)) => {
                    tracing::info!(order = %id, step = step.as_str(), %reason, "checkout refused; undoing");
                    let change = StepChange {
                        cancel_reason: Some(&reason),
                        error: Some(&reason),
                        ..StepChange::default()
                    };
                    if !self.advance(&order, Step::Compensating, &change).await? {
                        return Ok(());
                    }
                }
                Err(StepError::Transient(error)) => {
                    let attempts = u32::try_from(order.saga_attempts + 1).unwrap_or(u32::MAX);
                    let max = self.inner.config.orders_saga_max_attempts.max(1);
                    let forward = !matches!(step, Step::Compensating | Step::Review);
                    if forward && attempts >= max {
                        let reason = format!("unavailable: {error}");
                        tracing::warn!(order = %id, step = step.as_str(), %reason, "checkout gave up; undoing");
                        let change = StepChange {
                            cancel_reason: Some(&reason),
                            error: Some(&reason),
                            ..StepChange::default()
                        };
                        if !self.advance(&order, Step::Compensating, &change).await? {
                            return Ok(());
                        }
                        continue;
                    }
                    let backoff = self.backoff(attempts);
                    let next_at = now_micros() + micros(backoff);
                    let recorded = store::record_attempt(
                        &mut *self.inner.db.pool().acquire().await?,
                        id,
                        order.saga_version,
                        &error,
                        next_at,
                        now_micros(),
                    )
                    .await?;
                    if !recorded || attempts >= max {
                        return Ok(());
                    }
                    tracing::debug!(order = %id, step = step.as_str(), %error, "retrying a checkout step");
                    tokio::time::sleep(backoff).await;
                }
                Err(StepError::Internal(e)) => return Err(e),
            }
        }
        Ok(())
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let base = Duration::from_millis(self.inner.config.orders_saga_retry_ms.max(1));
        base.saturating_mul(1 << attempts.saturating_sub(1).min(16))
            .min(MAX_BACKOFF)
    }

    /// Moves the saga to `step` (no status change); false when another driver moved it.
    async fn advance(
        &self,
        order: &OrderRow,
        step: Step,
        change: &StepChange<'_>,
    ) -> anyhow::Result<bool> {
        let now = now_micros();
        let moved = store::advance(
            &mut *self.inner.db.pool().acquire().await?,
            &order.id,
            order.saga_version,
            step,
            change,
            now + self.lease_micros(),
            now,
        )
        .await?;
        if moved {
            self.maybe_halt(&order.id, step);
        }
        Ok(moved)
    }

    /// The test hook: after persisting the step it names, stop every driver of the process,
    /// as if it crashed there.
    pub(crate) fn maybe_halt(&self, id: &str, step: Step) {
        if self.inner.halt_after == Some(step) {
            self.inner.halted.store(true, Ordering::SeqCst);
            tracing::warn!(order = %id, step = step.as_str(), "ORDERS_SAGA_CRASH_AFTER: drivers halted");
        }
    }

    fn flow(&self, moved: bool) -> Flow {
        if moved && !self.is_halted() {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }

    async fn reserve(&self, order: &OrderRow) -> Result<Flow, StepError> {
        let lines = store::lines(&mut *self.inner.db.pool().acquire().await?, &order.id).await?;
        let wanted: Vec<(String, i64)> =
            lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
        let ttl = self.inner.config.orders_reservation_ttl_seconds.max(1);
        let reservation = self
            .inner
            .clients
            .reserve(&order.id, &wanted, ttl)
            .await
            .map_err(|e| match e.code() {
                Some("insufficient_stock") => {
                    StepError::Refused(format!("out_of_stock: {}", detail(&e)))
                }
                _ => call_error(e, "reserving stock"),
            })?;
        let mut tx = self.inner.db.begin().await?;
        let now = now_micros();
        let change = StepChange {
            reservation_id: Some(&reservation.id),
            ..StepChange::default()
        };
        let moved = store::advance(
            &mut tx,
            &order.id,
            order.saga_version,
            Step::Reserved,
            &change,
            now + self.lease_micros(),
            now,
        )
        .await?;
        if moved {
            for line in &lines {
                let held: Vec<_> = reservation
                    .allocations
                    .iter()
                    .filter(|a| a.sku == line.sku)
                    .collect();
                let json =
                    serde_json::to_string(&held).map_err(|e| StepError::Internal(e.into()))?;
                store::set_allocations(&mut tx, &order.id, &line.sku, &json).await?;
            }
        }
        tx.commit().await?;
        if moved {
            self.maybe_halt(&order.id, Step::Reserved);
        }
        Ok(self.flow(moved))
    }

    async fn create_payment(&self, order: &OrderRow) -> Result<Flow, StepError> {
        let shipping: Address = serde_json::from_str(&order.shipping_address)
            .map_err(|e| StepError::Internal(e.into()))?;
        let billing_country = match &order.billing_address {
            Some(json) => {
                serde_json::from_str::<Address>(json)
                    .map_err(|e| StepError::Internal(e.into()))?
                    .country
            }
            None => shipping.country.clone(),
        };
        let mut metadata = BTreeMap::new();
        metadata.insert("order_id".to_owned(), order.id.clone());
        metadata.insert("order_number".to_owned(), order.number.clone());
        if let Some(customer) = &order.customer_id {
            metadata.insert("customer_id".to_owned(), customer.clone());
        }
        let payment = self
            .inner
            .clients
            .create_payment(
                &order.id,
                &NewPayment {
                    amount: order.total,
                    currency: &order.currency,
                    token: &order.payment_token,
                    email: &order.email,
                    metadata,
                    shipping_country: &shipping.country,
                    billing_country: &billing_country,
                },
            )
            .await
            .map_err(|e| call_error(e, "creating the payment"))?;
        let change = StepChange {
            payment_id: Some(&payment.id),
            ..StepChange::default()
        };
        let moved = self
            .advance(order, Step::PaymentCreated, &change)
            .await
            .map_err(StepError::Internal)?;
        Ok(self.flow(moved))
    }

    async fn process(&self, order: &OrderRow) -> Result<Flow, StepError> {
        let Some(payment_id) = order.payment_id.as_deref() else {
            return Err(StepError::Refused("payment_missing".to_owned()));
        };
        let clients = &self.inner.clients;
        let payment =
            match clients.process_payment(&order.id, payment_id).await {
                Ok(payment) => payment,
                // Processed already (a review decided, or the answer was lost): read it.
                Err(e) if e.code() == Some("illegal_transition") => clients
                    .payment(payment_id)
                    .await
                    .map_err(|e| call_error(e, "reading the payment"))?,
                Err(e) => return Err(call_error(e, "charging the payment")),
            };
        self.after_payment(order, &payment).await
    }

    /// Where the payment's status takes the saga.
    async fn after_payment(&self, order: &OrderRow, payment: &Payment) -> Result<Flow, StepError> {
        match payment.status.as_str() {
            "succeeded" => {
                let moved = self
                    .advance(order, Step::Charged, &StepChange::default())
                    .await
                    .map_err(StepError::Internal)?;
                Ok(self.flow(moved))
            }
            "requires_review" if order.step() == Step::Review => {
                let next_at = now_micros() + micros(REVIEW_POLL);
                store::record_attempt(
                    &mut *self.inner.db.pool().acquire().await?,
                    &order.id,
                    order.saga_version,
                    "waiting for the payment's review",
                    next_at,
                    now_micros(),
                )
                .await?;
                Ok(Flow::Stop)
            }
            "requires_review" => {
                self.hold(order).await?;
                Ok(Flow::Stop)
            }
            "processing" => Err(StepError::Transient("the payment is processing".to_owned())),
            "failed" => Err(StepError::Refused("payment_declined".to_owned())),
            other => Err(StepError::Refused(format!("payment_{other}"))),
        }
    }

    /// `on_hold` while staff review the payment.
    async fn hold(&self, order: &OrderRow) -> Result<(), StepError> {
        let mut tx = self.inner.db.begin().await?;
        let now = now_micros();
        let moved = store::advance(
            &mut tx,
            &order.id,
            order.saga_version,
            Step::Review,
            &StepChange::default(),
            now + micros(REVIEW_POLL),
            now,
        )
        .await?
            && transition(&mut tx, order, Status::OnHold, "payment under review", now).await?;
        if moved {
            tx.commit().await?;
        }
        Ok(())
    }

    async fn check_review(&self, order: &OrderRow) -> Result<Flow, StepError> {
        let Some(payment_id) = order.payment_id.as_deref() else {
            return Err(StepError::Refused("payment_missing".to_owned()));
        };
        let payment = self
            .inner
            .clients
            .payment(payment_id)
            .await
            .map_err(|e| call_error(e, "reading the payment"))?;
        match payment.status.as_str() {
            "failed" | "canceled" => Err(StepError::Refused(
                "payment_rejected: the payment review refused it".to_owned(),
            )),
            _ => self.after_payment(order, &payment).await,
        }
    }

    async fn settle_paid(&self, order: &OrderRow) -> Result<Flow, StepError> {
        if let Some(reservation) = order.reservation_id.as_deref() {
            self.inner
                .clients
                .commit(reservation)
                .await
                .map_err(|e| match e.status() {
                    Some(s) if s.is_client_error() && !e.is_transient() => {
                        StepError::Refused(format!("reservation_lapsed: {}", detail(&e)))
                    }
                    _ => call_error(e, "committing the stock"),
                })?;
        }
        if !self
            .finish(
                order,
                Status::Paid,
                "payment succeeded",
                ORDER_PAID,
                "order_receipt",
            )
            .await?
        {
            return Ok(Flow::Stop);
        }
        self.redeem(order).await;
        Ok(Flow::Stop)
    }

    /// Records the promotions the paid order used. Best effort: a failure is logged, the
    /// order stays paid (usage limits are then one use short).
    async fn redeem(&self, order: &OrderRow) {
        let pricing: Value = serde_json::from_str(&order.pricing).unwrap_or(Value::Null);
        let applied = pricing
            .get("applied_promotions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for promotion in applied {
            let Some(id) = promotion.get("promotion_id").and_then(Value::as_str) else {
                continue;
            };
            if let Err(e) = self
                .inner
                .clients
                .redeem(id, &order.id, order.customer_id.as_deref())
                .await
            {
                tracing::warn!(order = %order.id, promotion = id, error = %e, "recording a redemption failed");
            }
        }
    }

    /// Undoes whatever the saga did, then `cancelled`.
    async fn compensate(&self, order: &OrderRow) -> Result<Flow, StepError> {
        let clients = &self.inner.clients;
        let reservations = clients
            .reservations_for(&order.id)
            .await
            .map_err(|e| transient(e, "finding the reservations"))?;
        for reservation in reservations.iter().filter(|r| r.status == "active") {
            clients
                .release(&reservation.id)
                .await
                .map_err(|e| transient(e, "releasing the stock"))?;
        }
        if let Some(payment_id) = order.payment_id.as_deref() {
            let payment = clients
                .payment(payment_id)
                .await
                .map_err(|e| transient(e, "reading the payment"))?;
            match payment.status.as_str() {
                "succeeded" if payment.amount_captured > payment.amount_refunded => {
                    let key = format!("{}:refund-cancel", order.id);
                    clients
                        .refund_payment(payment_id, None, "order cancelled", &key)
                        .await
                        .map_err(|e| transient(e, "refunding the payment"))?;
                }
                "succeeded" | "failed" | "canceled" => {}
                "processing" => {
                    return Err(StepError::Transient(
                        "the payment is still processing".to_owned(),
                    ));
                }
                _ => {
                    clients
                        .cancel_payment(&order.id, payment_id)
                        .await
                        .map_err(|e| transient(e, "cancelling the payment"))?;
                }
            }
        }
        let reason = order.cancel_reason.as_deref().unwrap_or("cancelled");
        self.finish(
            order,
            Status::Cancelled,
            reason,
            ORDER_CANCELLED,
            "order_cancelled",
        )
        .await?;
        Ok(Flow::Stop)
    }

    /// Ends the saga: `Done`, the order in its final status `to`, its event and its email,
    /// in one transaction; false when another driver finished it first.
    async fn finish(
        &self,
        order: &OrderRow,
        to: Status,
        note: &str,
        subject: &str,
        template: &str,
    ) -> Result<bool, StepError> {
        let mut tx = self.inner.db.begin().await?;
        let now = now_micros();
        let moved = store::advance(
            &mut tx,
            &order.id,
            order.saga_version,
            Step::Done,
            &StepChange::default(),
            now,
            now,
        )
        .await?
            && transition(&mut tx, order, to, note, now).await?;
        if !moved {
            return Ok(false);
        }
        let mut finished = order.clone();
        finished.status = to.as_str().to_owned();
        let lines = store::lines(&mut tx, &order.id).await?;
        let reason = (to == Status::Cancelled).then_some(note);
        events::publish(&mut tx, subject, &finished, &lines, reason, "system").await?;
        events::email(&mut tx, template, &finished, &lines).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Undo steps never give up: every failure is worth another try.
fn transient(e: CallError, what: &str) -> StepError {
    StepError::Transient(format!("{what}: {e}"))
}

fn detail(e: &CallError) -> String {
    match e {
        CallError::Refused { detail, .. } => detail.clone(),
        other => other.to_string(),
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn into_anyhow(e: StepError) -> anyhow::Error {
    match e {
        StepError::Internal(e) => e,
        StepError::Transient(m) | StepError::Refused(m) => anyhow::anyhow!(m),
    }
}

/// Sets the order's status from what it is now to `to`, with a history entry by the saga.
async fn transition(
    tx: &mut Tx,
    order: &OrderRow,
    to: Status,
    note: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    change_status(tx, order, to, "system", Some(note), now).await
}

/// Sets the order's status from what it is now to `to` (false when that move is illegal or
/// the status changed meanwhile), with a history entry naming `actor`.
pub async fn change_status(
    tx: &mut Tx,
    order: &OrderRow,
    to: Status,
    actor: &str,
    note: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let from = order.status();
    if !from.can_become(to) || !store::set_status(tx, &order.id, from, to, now).await? {
        return Ok(false);
    }
    store::insert_history(
        tx,
        &HistoryRow {
            id: mercato_kernel::id::new_id("oh"),
            order_id: order.id.clone(),
            from_status: Some(from.as_str().to_owned()),
            to_status: to.as_str().to_owned(),
            actor: actor.to_owned(),
            note: note.map(str::to_owned),
            created_at: now,
        },
    )
    .await?;
    Ok(true)
}
