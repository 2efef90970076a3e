//! SQL of the inventory database. Every function runs on a connection or transaction the
//! caller holds; the stock-changing ones are single conditional statements.

use sqlx::{AnyConnection, FromRow};

use crate::domain::{Candidate, MovementKind};

/// A warehouse as stored.
#[derive(Debug, Clone, FromRow)]
pub struct WarehouseRow {
    pub id: String,
    pub code: String,
    pub name: String,
    pub address: String,
    pub country: String,
    pub priority: i64,
    pub active: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl WarehouseRow {
    /// A new active warehouse without an address.
    pub fn new(code: &str, name: &str, country: &str, priority: i64, now: i64) -> Self {
        Self {
            id: mercato_kernel::id::new_id("wh"),
            code: code.to_owned(),
            name: name.to_owned(),
            address: "{}".to_owned(),
            country: country.to_owned(),
            priority,
            active: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

const WAREHOUSE_COLUMNS: &str =
    "id, code, name, address, country, priority, active, created_at, updated_at";

/// Inserts a warehouse; a taken code is a unique violation.
pub async fn insert_warehouse(conn: &mut AnyConnection, w: &WarehouseRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO warehouses (id, code, name, address, country, priority, active, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&w.id)
    .bind(&w.code)
    .bind(&w.name)
    .bind(&w.address)
    .bind(&w.country)
    .bind(w.priority)
    .bind(w.active)
    .bind(w.created_at)
    .bind(w.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes every mutable field of a warehouse.
pub async fn update_warehouse(conn: &mut AnyConnection, w: &WarehouseRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE warehouses SET code = $2, name = $3, address = $4, country = $5, priority = $6, \
         active = $7, updated_at = $8 WHERE id = $1",
    )
    .bind(&w.id)
    .bind(&w.code)
    .bind(&w.name)
    .bind(&w.address)
    .bind(&w.country)
    .bind(w.priority)
    .bind(w.active)
    .bind(w.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One warehouse.
pub async fn find_warehouse(
    conn: &mut AnyConnection,
    id: &str,
) -> sqlx::Result<Option<WarehouseRow>> {
    let sql = format!("SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Every warehouse in allocation order.
pub async fn list_warehouses(conn: &mut AnyConnection) -> sqlx::Result<Vec<WarehouseRow>> {
    let sql = format!("SELECT {WAREHOUSE_COLUMNS} FROM warehouses ORDER BY priority, code");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(conn)
        .await
}

/// A SKU's alert settings.
#[derive(Debug, Clone, FromRow)]
pub struct SkuRow {
    pub sku: String,
    pub low_stock_threshold: Option<i64>,
    pub low: i64,
}

/// Registers a SKU; nothing happens when it is known.
pub async fn ensure_sku(conn: &mut AnyConnection, sku: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO skus (sku, low, created_at, updated_at) VALUES ($1, 0, $2, $2) \
         ON CONFLICT (sku) DO NOTHING",
    )
    .bind(sku)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a SKU changed and, on PostgreSQL, locks it until the transaction ends, so changes
/// to one SKU are serialized and its totals, events and alert flag stay consistent. `false`
/// when the SKU is unknown.
pub async fn lock_sku(conn: &mut AnyConnection, sku: &str, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE skus SET updated_at = $2 WHERE sku = $1")
        .bind(sku)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A SKU's alert settings.
pub async fn find_sku(conn: &mut AnyConnection, sku: &str) -> sqlx::Result<Option<SkuRow>> {
    sqlx::query_as("SELECT sku, low_stock_threshold, low FROM skus WHERE sku = $1")
        .bind(sku)
        .fetch_optional(conn)
        .await
}

/// Sets (or clears, with `None`) a SKU's own low-stock threshold.
pub async fn set_threshold(
    conn: &mut AnyConnection,
    sku: &str,
    threshold: Option<i64>,
    now: i64,
) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE skus SET low_stock_threshold = $2, updated_at = $3 WHERE sku = $1")
            .bind(sku)
            .bind(threshold)
            .bind(now)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Flips the low flag; `true` only for the transaction that flipped it.
pub async fn flip_low(conn: &mut AnyConnection, sku: &str, low: bool) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE skus SET low = $2 WHERE sku = $1 AND low = $3")
        .bind(sku)
        .bind(i64::from(low))
        .bind(i64::from(!low))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Totals of one SKU over every warehouse; `available` counts active warehouses only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromRow)]
pub struct Totals {
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

// SUM of BIGINT is NUMERIC on PostgreSQL; the casts keep it an i64 for the `Any` driver.
const TOTALS: &str = "CAST(COALESCE(SUM(l.on_hand), 0) AS BIGINT) AS on_hand, \
     CAST(COALESCE(SUM(l.reserved), 0) AS BIGINT) AS reserved, \
     CAST(COALESCE(SUM(CASE WHEN w.active = 1 THEN l.on_hand - l.reserved ELSE 0 END), 0) \
     AS BIGINT) AS available";

/// Totals of one SKU.
pub async fn totals(conn: &mut AnyConnection, sku: &str) -> sqlx::Result<Totals> {
    let sql = format!(
        "SELECT {TOTALS} FROM stock_levels l JOIN warehouses w ON w.id = l.warehouse_id \
         WHERE l.sku = $1"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(sku)
        .fetch_one(conn)
        .await
}

/// Totals of one SKU, with its name.
#[derive(Debug, Clone, FromRow)]
pub struct SkuTotals {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

/// Totals of every SKU changed after `since` (micros), for the live feed. SKUs without any
/// stock row answer zeros.
pub async fn totals_changed_since(
    conn: &mut AnyConnection,
    since: i64,
) -> sqlx::Result<Vec<SkuTotals>> {
    let sql = format!(
        "SELECT s.sku, {TOTALS} FROM skus s \
         LEFT JOIN stock_levels l ON l.sku = s.sku \
         LEFT JOIN warehouses w ON w.id = l.warehouse_id \
         WHERE s.updated_at > $1 GROUP BY s.sku"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .fetch_all(conn)
        .await
}

/// SKUs whose available units are at or below their threshold (or `default`), fewest first.
pub async fn low_skus(
    conn: &mut AnyConnection,
    default_threshold: i64,
    limit: i64,
) -> sqlx::Result<Vec<(SkuTotals, i64)>> {
    #[derive(FromRow)]
    struct Row {
        sku: String,
        on_hand: i64,
        reserved: i64,
        available: i64,
        threshold: i64,
    }
    let sql = format!(
        "SELECT * FROM (SELECT s.sku, {TOTALS}, \
         COALESCE(MAX(s.low_stock_threshold), $1) AS threshold FROM skus s \
         LEFT JOIN stock_levels l ON l.sku = s.sku \
         LEFT JOIN warehouses w ON w.id = l.warehouse_id GROUP BY s.sku) t \
         WHERE t.available <= t.threshold ORDER BY t.available, t.sku LIMIT $2"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(default_threshold)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let totals = SkuTotals {
                sku: r.sku,
                on_hand: r.on_hand,
                reserved: r.reserved,
                available: r.available,
            };
            (totals, r.threshold)
        })
        .collect())
}

/// One SKU's stock in one warehouse, with the warehouse's allocation fields.
#[derive(Debug, Clone, FromRow)]
pub struct LevelRow {
    pub warehouse_id: String,
    pub code: String,
    pub active: i64,
    pub on_hand: i64,
    pub reserved: i64,
}

/// A SKU's stock per warehouse, in allocation order.
pub async fn levels(conn: &mut AnyConnection, sku: &str) -> sqlx::Result<Vec<LevelRow>> {
    sqlx::query_as(
        "SELECT l.warehouse_id, w.code, w.active, l.on_hand, l.reserved FROM stock_levels l \
         JOIN warehouses w ON w.id = l.warehouse_id WHERE l.sku = $1 ORDER BY w.priority, w.code",
    )
    .bind(sku)
    .fetch_all(conn)
    .await
}

/// Warehouses that can give units of `sku` now, in allocation order.
pub async fn candidates(conn: &mut AnyConnection, sku: &str) -> sqlx::Result<Vec<Candidate>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.warehouse_id, l.on_hand - l.reserved FROM stock_levels l \
         JOIN warehouses w ON w.id = l.warehouse_id \
         WHERE l.sku = $1 AND w.active = 1 AND l.on_hand > l.reserved \
         ORDER BY w.priority, w.code",
    )
    .bind(sku)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(warehouse_id, available)| Candidate {
            warehouse_id,
            available,
        })
        .collect())
}

/// SKUs with a stock row in `warehouse_id`, sorted (the order SKU locks are taken in).
pub async fn skus_in(conn: &mut AnyConnection, warehouse_id: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT sku FROM stock_levels WHERE warehouse_id = $1 ORDER BY sku")
        .bind(warehouse_id)
        .fetch_all(conn)
        .await
}

/// Creates the (empty) stock row of a SKU in a warehouse when missing.
pub async fn ensure_level(
    conn: &mut AnyConnection,
    sku: &str,
    warehouse_id: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO stock_levels (sku, warehouse_id, on_hand, reserved, updated_at) \
         VALUES ($1, $2, 0, 0, $3) ON CONFLICT (sku, warehouse_id) DO NOTHING",
    )
    .bind(sku)
    .bind(warehouse_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stock of one SKU in one warehouse after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct Level {
    pub on_hand: i64,
    pub reserved: i64,
}

/// Moves stock by the two deltas in one conditional statement: nothing happens (`None`)
/// unless the result keeps `0 ≤ reserved ≤ on_hand`. This is the only way stock changes, so
/// concurrent writers can never oversell, whatever they read before.
pub async fn apply(
    conn: &mut AnyConnection,
    sku: &str,
    warehouse_id: &str,
    on_hand_delta: i64,
    reserved_delta: i64,
    now: i64,
) -> sqlx::Result<Option<Level>> {
    sqlx::query_as(
        "UPDATE stock_levels SET on_hand = on_hand + $3, reserved = reserved + $4, \
         updated_at = $5 WHERE sku = $1 AND warehouse_id = $2 \
         AND reserved + $4 >= 0 AND on_hand + $3 >= reserved + $4 \
         RETURNING on_hand, reserved",
    )
    .bind(sku)
    .bind(warehouse_id)
    .bind(on_hand_delta)
    .bind(reserved_delta)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// The current on-hand units of a SKU in a warehouse (0 without a row).
pub async fn on_hand(conn: &mut AnyConnection, sku: &str, warehouse_id: &str) -> sqlx::Result<i64> {
    let value: Option<i64> =
        sqlx::query_scalar("SELECT on_hand FROM stock_levels WHERE sku = $1 AND warehouse_id = $2")
            .bind(sku)
            .bind(warehouse_id)
            .fetch_optional(conn)
            .await?;
    Ok(value.unwrap_or(0))
}

/// A ledger entry.
#[derive(Debug, Clone, FromRow)]
pub struct MovementRow {
    pub id: String,
    pub sku: String,
    pub warehouse_id: String,
    pub kind: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub reference: Option<String>,
    pub note: Option<String>,
    pub actor: String,
    pub created_at: i64,
}

/// Appends a ledger entry.
pub async fn insert_movement(conn: &mut AnyConnection, m: &MovementRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO movements (id, sku, warehouse_id, kind, on_hand_delta, reserved_delta, \
         on_hand_after, reserved_after, reference, note, actor, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&m.id)
    .bind(&m.sku)
    .bind(&m.warehouse_id)
    .bind(&m.kind)
    .bind(m.on_hand_delta)
    .bind(m.reserved_delta)
    .bind(m.on_hand_after)
    .bind(m.reserved_after)
    .bind(&m.reference)
    .bind(&m.note)
    .bind(&m.actor)
    .bind(m.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of a SKU's ledger, newest first, strictly before the `before` id when given.
pub async fn movements(
    conn: &mut AnyConnection,
    sku: &str,
    before: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<MovementRow>> {
    sqlx::query_as(
        "SELECT id, sku, warehouse_id, kind, on_hand_delta, reserved_delta, on_hand_after, \
         reserved_after, reference, note, actor, created_at FROM movements \
         WHERE sku = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(sku)
    // Ids are `mov_` + hex, so `~` sorts after every one of them.
    .bind(before.unwrap_or("mov_~"))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A reservation as stored.
#[derive(Debug, Clone, FromRow)]
pub struct ReservationRow {
    pub id: String,
    pub reference: String,
    pub status: String,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Inserts a reservation.
pub async fn insert_reservation(conn: &mut AnyConnection, r: &ReservationRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO reservations (id, reference, status, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&r.id)
    .bind(&r.reference)
    .bind(&r.status)
    .bind(r.expires_at)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One allocated part of a reservation line.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LineRow {
    pub sku: String,
    pub warehouse_id: String,
    pub quantity: i64,
    pub position: i64,
}

/// Inserts an allocated line.
pub async fn insert_line(
    conn: &mut AnyConnection,
    reservation_id: &str,
    line: &LineRow,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO reservation_lines (reservation_id, sku, warehouse_id, quantity, position) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(reservation_id)
    .bind(&line.sku)
    .bind(&line.warehouse_id)
    .bind(line.quantity)
    .bind(line.position)
    .execute(conn)
    .await?;
    Ok(())
}

/// One reservation.
pub async fn find_reservation(
    conn: &mut AnyConnection,
    id: &str,
) -> sqlx::Result<Option<ReservationRow>> {
    sqlx::query_as(
        "SELECT id, reference, status, expires_at, created_at, updated_at FROM reservations \
         WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Reservations made for `reference`, oldest first.
pub async fn reservations_for(
    conn: &mut AnyConnection,
    reference: &str,
) -> sqlx::Result<Vec<ReservationRow>> {
    sqlx::query_as(
        "SELECT id, reference, status, expires_at, created_at, updated_at FROM reservations \
         WHERE reference = $1 ORDER BY id LIMIT 100",
    )
    .bind(reference)
    .fetch_all(conn)
    .await
}

/// The allocated lines of a reservation, in request order then by SKU and warehouse, which is
/// also the order stock rows are locked in.
pub async fn lines_of(
    conn: &mut AnyConnection,
    reservation_id: &str,
) -> sqlx::Result<Vec<LineRow>> {
    sqlx::query_as(
        "SELECT sku, warehouse_id, quantity, position FROM reservation_lines \
         WHERE reservation_id = $1 ORDER BY position, sku, warehouse_id",
    )
    .bind(reservation_id)
    .fetch_all(conn)
    .await
}

/// Moves an active reservation to `to`; `false` when it is no longer active (someone else
/// settled it first), which makes every settlement happen once.
pub async fn close_reservation(
    conn: &mut AnyConnection,
    id: &str,
    to: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE reservations SET status = $2, updated_at = $3 WHERE id = $1 AND status = 'active'",
    )
    .bind(id)
    .bind(to)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Active reservations whose expiry has passed, oldest first.
pub async fn due_reservations(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM reservations WHERE status = 'active' AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Parses a stored movement kind; unknown names (a newer writer) read as adjustments.
pub fn movement_kind(raw: &str) -> MovementKind {
    MovementKind::parse(raw).unwrap_or(MovementKind::Adjustment)
}
