//! Every change to stock: adjustments, reservations, commits, releases and expiry.
//!
//! Each change runs in one transaction that (1) locks the SKUs it touches in sorted order, so
//! writers of one SKU queue up and writers of several can never deadlock, (2) moves stock with
//! the conditional update of [`store::apply`], (3) appends the ledger rows, and (4) writes
//! `inventory.stock.updated` (and `inventory.stock.low` on a downward crossing) to the outbox.
//! The functions ending in `_in` take the caller's transaction so event consumers can run them
//! inside their inbox transaction; the others open their own and retry a transaction that lost
//! a race with another (deadlock, serialization failure, busy SQLite).

use std::collections::BTreeSet;
use std::time::Duration;

use mercato_bus::Event;
use mercato_contracts::inventory::{StockLow, StockUpdated};
use mercato_contracts::subjects::{STOCK_LOW, STOCK_UPDATED};
use mercato_kernel::id::new_id;
use mercato_store::{Db, StoreError, Tx, is_transient_conflict, now_micros};

use crate::domain::{self, MovementKind, ReservationStatus};
use crate::store::{self, Level, LineRow, MovementRow, ReservationRow, Totals};

/// Who changes stock when no person does (sweeper, event consumers).
pub const SYSTEM: &str = "system";

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Some SKUs are not known to inventory.
    #[error("unknown sku: {}", .0.join(", "))]
    UnknownSku(Vec<String>),
    /// The warehouse does not exist.
    #[error("unknown warehouse")]
    UnknownWarehouse,
    /// Some lines cannot be served; nothing was reserved.
    #[error("insufficient stock")]
    Insufficient(Vec<Shortage>),
    /// An adjustment would leave fewer units than are reserved (or fewer than none).
    #[error("on hand would fall below the {reserved} reserved units")]
    BelowReserved {
        /// Units held for reservations in that warehouse.
        reserved: i64,
    },
    /// No such reservation.
    #[error("reservation not found")]
    ReservationNotFound,
    /// The reservation was already settled another way.
    #[error("reservation is {}", .0.as_str())]
    ReservationClosed(ReservationStatus),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Opening a transaction failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding an event failed.
    #[error(transparent)]
    Bus(#[from] mercato_bus::BusError),
}

impl LedgerError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Db(e) | Self::Store(StoreError::Sqlx(e)) => is_transient_conflict(e),
            _ => false,
        }
    }
}

/// A line that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Shortage {
    /// The SKU.
    pub sku: String,
    /// Units asked for.
    pub requested: i64,
    /// Units available now.
    pub available: i64,
}

/// A manual stock change.
#[derive(Debug, Clone)]
pub struct Adjustment {
    /// A known SKU, or a new one when units are received.
    pub sku: String,
    /// `wh_…`.
    pub warehouse_id: String,
    /// How on-hand changes.
    pub change: Change,
    /// `receipt`, `adjustment` or `return`.
    pub kind: MovementKind,
    /// A document number (delivery note, RMA…).
    pub reference: Option<String>,
    /// Free text.
    pub note: Option<String>,
}

/// How an adjustment changes on-hand units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Adds (or with a negative value removes) units.
    Delta(i64),
    /// Sets the counted units.
    Set(i64),
}

/// One requested reservation line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The SKU.
    pub sku: String,
    /// Units, at least 1.
    pub quantity: i64,
}

/// A reservation to make; lines are validated (positive quantities, distinct SKUs).
#[derive(Debug, Clone)]
pub struct NewReservation {
    /// Usually the order id.
    pub reference: String,
    /// What to hold.
    pub lines: Vec<Want>,
    /// Lifetime.
    pub ttl_seconds: i64,
}

/// A reservation with its allocation.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// The stored reservation.
    pub row: ReservationRow,
    /// Allocated parts, in request order.
    pub lines: Vec<LineRow>,
}

impl Reservation {
    /// Its status.
    pub fn status(&self) -> ReservationStatus {
        ReservationStatus::parse(&self.row.status).unwrap_or(ReservationStatus::Active)
    }
}

/// The stock-changing operations, over one service database.
#[derive(Clone, Debug)]
pub struct Ledger {
    db: Db,
    default_threshold: i64,
}

/// Runs `$body` (which uses `$tx`) in a transaction, again when it lost a race.
macro_rules! retrying {
    ($db:expr, |$tx:ident| $body:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            let outcome = async {
                let mut $tx = $db.begin().await?;
                let value = $body?;
                $tx.commit().await?;
                Ok::<_, LedgerError>(value)
            }
            .await;
            match outcome {
                Err(e) if e.is_transient() && attempt < 8 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(5 << attempt.min(6))).await;
                }
                other => break other,
            }
        }
    }};
}

impl Ledger {
    /// Operations over `db`; `default_threshold` applies to SKUs without their own.
    pub fn new(db: Db, default_threshold: i64) -> Self {
        Self {
            db,
            default_threshold,
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The threshold of SKUs without their own.
    pub fn default_threshold(&self) -> i64 {
        self.default_threshold
    }

    /// Applies a manual change; returns the ledger row.
    pub async fn adjust(&self, a: &Adjustment, actor: &str) -> Result<MovementRow, LedgerError> {
        retrying!(self.db, |tx| self.adjust_in(&mut tx, a, actor).await)
    }

    /// [`Ledger::adjust`] in the caller's transaction.
    pub async fn adjust_in(
        &self,
        tx: &mut Tx,
        a: &Adjustment,
        actor: &str,
    ) -> Result<MovementRow, LedgerError> {
        let now = now_micros();
        if store::find_warehouse(tx, &a.warehouse_id).await?.is_none() {
            return Err(LedgerError::UnknownWarehouse);
        }
        let adds = match a.change {
            Change::Delta(d) => d > 0,
            Change::Set(_) => true,
        };
        if !store::lock_sku(tx, &a.sku, now).await? {
            if !adds {
                return Err(LedgerError::UnknownSku(vec![a.sku.clone()]));
            }
            store::ensure_sku(tx, &a.sku, now).await?;
        }
        store::ensure_level(tx, &a.sku, &a.warehouse_id, now).await?;
        let delta = match a.change {
            Change::Delta(d) => d,
            // The SKU lock makes the read and the write one step.
            Change::Set(n) => n - store::on_hand(tx, &a.sku, &a.warehouse_id).await?,
        };
        let Some(level) = store::apply(tx, &a.sku, &a.warehouse_id, delta, 0, now).await? else {
            let reserved = store::levels(tx, &a.sku)
                .await?
                .into_iter()
                .find(|l| l.warehouse_id == a.warehouse_id)
                .map_or(0, |l| l.reserved);
            return Err(LedgerError::BelowReserved { reserved });
        };
        let movement = movement(
            &a.sku,
            &a.warehouse_id,
            a.kind,
            (delta, 0),
            level,
            a.reference.clone(),
            a.note.clone(),
            actor,
            now,
        );
        store::insert_movement(tx, &movement).await?;
        self.publish_stock(tx, &a.sku).await?;
        Ok(movement)
    }

    /// Holds every line, all or nothing.
    pub async fn reserve(
        &self,
        new: &NewReservation,
        actor: &str,
    ) -> Result<Reservation, LedgerError> {
        retrying!(self.db, |tx| self.reserve_in(&mut tx, new, actor).await)
    }

    /// [`Ledger::reserve`] in the caller's transaction; on `Err` the caller must roll back.
    pub async fn reserve_in(
        &self,
        tx: &mut Tx,
        new: &NewReservation,
        actor: &str,
    ) -> Result<Reservation, LedgerError> {
        let now = now_micros();
        let skus: BTreeSet<&str> = new.lines.iter().map(|l| l.sku.as_str()).collect();
        let mut unknown = Vec::new();
        for sku in &skus {
            if !store::lock_sku(tx, sku, now).await? {
                unknown.push((*sku).to_owned());
            }
        }
        if !unknown.is_empty() {
            return Err(LedgerError::UnknownSku(unknown));
        }
        let id = new_id("res");
        let mut lines = Vec::new();
        let mut movements = Vec::new();
        let mut short = Vec::new();
        for (position, want) in (0_i64..).zip(&new.lines) {
            match self
                .hold_line(tx, want, position, &id, actor, now, &mut movements)
                .await?
            {
                Ok(mut held) => lines.append(&mut held),
                Err(available) => short.push(Shortage {
                    sku: want.sku.clone(),
                    requested: want.quantity,
                    available,
                }),
            }
        }
        if !short.is_empty() {
            return Err(LedgerError::Insufficient(short));
        }
        let row = ReservationRow {
            id: id.clone(),
            reference: new.reference.clone(),
            status: ReservationStatus::Active.as_str().to_owned(),
            expires_at: now.saturating_add(new.ttl_seconds.saturating_mul(1_000_000)),
            created_at: now,
            updated_at: now,
        };
        store::insert_reservation(tx, &row).await?;
        for line in &lines {
            store::insert_line(tx, &id, line).await?;
        }
        for m in &movements {
            store::insert_movement(tx, m).await?;
        }
        for sku in skus {
            self.publish_stock(tx, sku).await?;
        }
        Ok(Reservation { row, lines })
    }

    /// Holds one line across warehouses. The plan is made from a read, but only the
    /// conditional update decides: when it refuses (another writer got there first, which
    /// the SKU lock makes rare), the rest of the line is planned again from a fresh read.
    #[allow(clippy::too_many_arguments)]
    async fn hold_line(
        &self,
        tx: &mut Tx,
        want: &Want,
        position: i64,
        reservation_id: &str,
        actor: &str,
        now: i64,
        movements: &mut Vec<MovementRow>,
    ) -> Result<Result<Vec<LineRow>, i64>, LedgerError> {
        let mut held: Vec<LineRow> = Vec::new();
        let mut left = want.quantity;
        for _ in 0..16 {
            let candidates = store::candidates(tx, &want.sku).await?;
            let plan = match domain::allocate(left, &candidates) {
                Ok(plan) => plan,
                Err(available) => {
                    // Give back what this line already took; the caller rolls back anyway,
                    // but the short answer must count it as available.
                    let taken: i64 = held.iter().map(|l| l.quantity).sum();
                    return Ok(Err(available + taken));
                }
            };
            for (warehouse_id, quantity) in plan {
                let Some(level) =
                    store::apply(tx, &want.sku, &warehouse_id, 0, quantity, now).await?
                else {
                    break;
                };
                movements.push(movement(
                    &want.sku,
                    &warehouse_id,
                    MovementKind::Reservation,
                    (0, quantity),
                    level,
                    Some(reservation_id.to_owned()),
                    None,
                    actor,
                    now,
                ));
                match held.iter_mut().find(|l| l.warehouse_id == warehouse_id) {
                    Some(line) => line.quantity += quantity,
                    None => held.push(LineRow {
                        sku: want.sku.clone(),
                        warehouse_id,
                        quantity,
                        position,
                    }),
                }
                left -= quantity;
            }
            if left == 0 {
                return Ok(Ok(held));
            }
        }
        Ok(Err(want.quantity - left))
    }

    /// Stock leaves: the held units are taken off on-hand. Committing a committed reservation
    /// answers it again.
    pub async fn commit(&self, id: &str, actor: &str) -> Result<Reservation, LedgerError> {
        retrying!(self.db, |tx| self
            .settle_in(&mut tx, id, ReservationStatus::Committed, actor)
            .await)
    }

    /// Held units return to available. Releasing a released reservation answers it again.
    pub async fn release(&self, id: &str, actor: &str) -> Result<Reservation, LedgerError> {
        retrying!(self.db, |tx| self
            .settle_in(&mut tx, id, ReservationStatus::Released, actor)
            .await)
    }

    /// Settles an active reservation as `to` (committed, released or expired) in the caller's
    /// transaction. Idempotent for the same outcome; another outcome is `ReservationClosed`.
    pub async fn settle_in(
        &self,
        tx: &mut Tx,
        id: &str,
        to: ReservationStatus,
        actor: &str,
    ) -> Result<Reservation, LedgerError> {
        let now = now_micros();
        let Some(row) = store::find_reservation(tx, id).await? else {
            return Err(LedgerError::ReservationNotFound);
        };
        let mut lines = store::lines_of(tx, id).await?;
        let current = ReservationStatus::parse(&row.status).unwrap_or(ReservationStatus::Active);
        if current != ReservationStatus::Active {
            let same = current == to
                || (to == ReservationStatus::Released && current == ReservationStatus::Expired);
            return if same {
                Ok(Reservation { row, lines })
            } else {
                Err(LedgerError::ReservationClosed(current))
            };
        }
        let skus: BTreeSet<String> = lines.iter().map(|l| l.sku.clone()).collect();
        for sku in &skus {
            store::lock_sku(tx, sku, now).await?;
        }
        // Settled by someone else since the read: answer as they left it.
        if !store::close_reservation(tx, id, to.as_str(), now).await? {
            let row = store::find_reservation(tx, id)
                .await?
                .ok_or(LedgerError::ReservationNotFound)?;
            let current =
                ReservationStatus::parse(&row.status).unwrap_or(ReservationStatus::Active);
            return if current == to {
                Ok(Reservation { row, lines })
            } else {
                Err(LedgerError::ReservationClosed(current))
            };
        }
        let (kind, note) = match to {
            ReservationStatus::Committed => (MovementKind::Commit, None),
            ReservationStatus::Expired => (MovementKind::Release, Some("expired".to_owned())),
            _ => (MovementKind::Release, None),
        };
        lines.sort_by(|a, b| (&a.sku, &a.warehouse_id).cmp(&(&b.sku, &b.warehouse_id)));
        for line in &lines {
            let on_hand_delta = if kind == MovementKind::Commit {
                -line.quantity
            } else {
                0
            };
            let deltas = (on_hand_delta, -line.quantity);
            let level = store::apply(tx, &line.sku, &line.warehouse_id, deltas.0, deltas.1, now)
                .await?
                .ok_or_else(|| {
                    // Held units are only ever removed by settling, so this is corruption.
                    sqlx::Error::Protocol(format!(
                        "reservation {id} holds more {} than {} has reserved",
                        line.sku, line.warehouse_id
                    ))
                })?;
            let m = movement(
                &line.sku,
                &line.warehouse_id,
                kind,
                deltas,
                level,
                Some(id.to_owned()),
                note.clone(),
                actor,
                now,
            );
            store::insert_movement(tx, &m).await?;
        }
        for sku in &skus {
            self.publish_stock(tx, sku).await?;
        }
        lines.sort_by_key(|l| l.position);
        let row = ReservationRow {
            status: to.as_str().to_owned(),
            updated_at: now,
            ..row
        };
        Ok(Reservation { row, lines })
    }

    /// Settles every active reservation made for `reference` (an order) as `to`, in the
    /// caller's transaction; returns how many were settled.
    pub async fn settle_reference_in(
        &self,
        tx: &mut Tx,
        reference: &str,
        to: ReservationStatus,
    ) -> Result<usize, LedgerError> {
        let mut settled = 0;
        for row in store::reservations_for(tx, reference).await? {
            if row.status == ReservationStatus::Active.as_str() {
                self.settle_in(tx, &row.id, to, SYSTEM).await?;
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Releases reservations whose time is up; returns how many.
    pub async fn expire_due(&self, now: i64) -> Result<usize, LedgerError> {
        let ids = store::due_reservations(&mut *self.db.pool().acquire().await?, now, 200).await?;
        let mut expired = 0;
        for id in ids {
            let outcome: Result<Reservation, LedgerError> = retrying!(self.db, |tx| self
                .settle_in(&mut tx, &id, ReservationStatus::Expired, SYSTEM)
                .await);
            match outcome {
                Ok(r) if r.status() == ReservationStatus::Expired => expired += 1,
                // Committed or released meanwhile: nothing to expire.
                Ok(_) | Err(LedgerError::ReservationClosed(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(expired)
    }

    /// Sets or clears a SKU's own threshold and re-evaluates its alert.
    pub async fn set_threshold(
        &self,
        sku: &str,
        threshold: Option<i64>,
    ) -> Result<(), LedgerError> {
        retrying!(self.db, |tx| async {
            let now = now_micros();
            if !store::set_threshold(&mut tx, sku, threshold, now).await? {
                return Err(LedgerError::UnknownSku(vec![sku.to_owned()]));
            }
            self.publish_stock(&mut tx, sku).await
        }
        .await)
    }

    /// Publishes the stock of every SKU kept in `warehouse_id`, whose available units changed
    /// because the warehouse was switched on or off.
    pub async fn warehouse_changed(&self, warehouse_id: &str) -> Result<usize, LedgerError> {
        retrying!(self.db, |tx| async {
            let now = now_micros();
            let skus = store::skus_in(&mut tx, warehouse_id).await?;
            for sku in &skus {
                store::lock_sku(&mut tx, sku, now).await?;
                self.publish_stock(&mut tx, sku).await?;
            }
            Ok::<_, LedgerError>(skus.len())
        }
        .await)
    }

    /// Writes the SKU's totals to the outbox and fires or re-arms its low-stock alert.
    async fn publish_stock(&self, tx: &mut Tx, sku: &str) -> Result<(), LedgerError> {
        let totals = store::totals(tx, sku).await?;
        let update = StockUpdated {
            sku: sku.to_owned(),
            available: totals.available.max(0),
            on_hand: totals.on_hand,
            reserved: totals.reserved,
        };
        let event = Event::new(crate::SOURCE, STOCK_UPDATED, &update)?.with_subject(sku);
        mercato_bus::enqueue(tx, &event).await?;
        let threshold = store::find_sku(tx, sku)
            .await?
            .and_then(|s| s.low_stock_threshold)
            .unwrap_or(self.default_threshold);
        let low = totals.available <= threshold;
        if store::flip_low(tx, sku, low).await? && low {
            let alert = StockLow {
                sku: sku.to_owned(),
                available: totals.available,
                threshold,
            };
            let event = Event::new(crate::SOURCE, STOCK_LOW, &alert)?.with_subject(sku);
            mercato_bus::enqueue(tx, &event).await?;
        }
        Ok(())
    }

    /// A SKU's totals, `None` when unknown.
    pub async fn totals(&self, sku: &str) -> Result<Option<Totals>, LedgerError> {
        let mut conn = self.db.pool().acquire().await?;
        if store::find_sku(&mut conn, sku).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(store::totals(&mut conn, sku).await?))
    }
}

#[allow(clippy::too_many_arguments)]
fn movement(
    sku: &str,
    warehouse_id: &str,
    kind: MovementKind,
    (on_hand_delta, reserved_delta): (i64, i64),
    after: Level,
    reference: Option<String>,
    note: Option<String>,
    actor: &str,
    now: i64,
) -> MovementRow {
    MovementRow {
        id: new_id("mov"),
        sku: sku.to_owned(),
        warehouse_id: warehouse_id.to_owned(),
        kind: kind.as_str().to_owned(),
        on_hand_delta,
        reserved_delta,
        on_hand_after: after.on_hand,
        reserved_after: after.reserved,
        reference,
        note,
        actor: actor.to_owned(),
        created_at: now,
    }
}
