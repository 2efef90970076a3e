//! SQL of the orders database. Functions run on a connection or transaction the caller holds;
//! every change of an order's status or saga step is one conditional update.

use sqlx::{AnyConnection, FromRow};

use crate::domain::{ShippingRate, Status, Step, TaxRate};

/// A cart as stored.
#[derive(Debug, Clone, FromRow)]
pub struct CartRow {
    pub id: String,
    pub customer_id: Option<String>,
    pub currency: String,
    pub status: String,
    pub coupon: Option<String>,
    pub email: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub order_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const CART_COLUMNS: &str = "id, customer_id, currency, status, coupon, email, country, region, \
                            order_id, created_at, updated_at";

/// An item of a cart.
#[derive(Debug, Clone, FromRow)]
pub struct ItemRow {
    pub id: String,
    pub cart_id: String,
    pub sku: String,
    pub quantity: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn insert_cart(conn: &mut AnyConnection, c: &CartRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO carts (id, customer_id, currency, status, coupon, email, country, region, \
         order_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&c.id)
    .bind(&c.customer_id)
    .bind(&c.currency)
    .bind(&c.status)
    .bind(&c.coupon)
    .bind(&c.email)
    .bind(&c.country)
    .bind(&c.region)
    .bind(&c.order_id)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_cart(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<CartRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CART_COLUMNS} FROM carts WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The customer's newest open cart in `currency`.
pub async fn open_cart_of(
    conn: &mut AnyConnection,
    customer_id: &str,
    currency: &str,
) -> sqlx::Result<Option<CartRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CART_COLUMNS} FROM carts WHERE customer_id = $1 AND status = 'open' \
         AND currency = $2 ORDER BY id DESC LIMIT 1"
    )))
    .bind(customer_id)
    .bind(currency)
    .fetch_optional(conn)
    .await
}

/// Writes the cart's editable fields.
pub async fn update_cart(conn: &mut AnyConnection, c: &CartRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE carts SET customer_id = $2, coupon = $3, email = $4, country = $5, region = $6, \
         status = $7, updated_at = $8 WHERE id = $1",
    )
    .bind(&c.id)
    .bind(&c.customer_id)
    .bind(&c.coupon)
    .bind(&c.email)
    .bind(&c.country)
    .bind(&c.region)
    .bind(&c.status)
    .bind(c.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks an open cart as ordered; false when it is not open any more.
pub async fn convert_cart(
    conn: &mut AnyConnection,
    cart_id: &str,
    order_id: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE carts SET status = 'converted', order_id = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'open'",
    )
    .bind(cart_id)
    .bind(order_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn items(conn: &mut AnyConnection, cart_id: &str) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as(
        "SELECT id, cart_id, sku, quantity, created_at, updated_at FROM cart_items \
         WHERE cart_id = $1 ORDER BY created_at, id",
    )
    .bind(cart_id)
    .fetch_all(conn)
    .await
}

pub async fn insert_item(conn: &mut AnyConnection, i: &ItemRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cart_items (id, cart_id, sku, quantity, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&i.id)
    .bind(&i.cart_id)
    .bind(&i.sku)
    .bind(i.quantity)
    .bind(i.created_at)
    .bind(i.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_item_quantity(
    conn: &mut AnyConnection,
    item_id: &str,
    quantity: i64,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE cart_items SET quantity = $2, updated_at = $3 WHERE id = $1")
        .bind(item_id)
        .bind(quantity)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_item(conn: &mut AnyConnection, item_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM cart_items WHERE id = $1")
        .bind(item_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// An order as stored.
#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    pub id: String,
    pub number: String,
    pub customer_id: Option<String>,
    pub email: String,
    pub cart_id: String,
    pub checkout_key: String,
    pub status: String,
    pub currency: String,
    pub subtotal: i64,
    pub discount_total: i64,
    pub shipping_total: i64,
    pub tax_total: i64,
    pub total: i64,
    pub amount_refunded: i64,
    pub coupon: Option<String>,
    pub pricing: String,
    pub shipping_address: String,
    pub billing_address: Option<String>,
    pub payment_token: String,
    pub payment_id: Option<String>,
    pub reservation_id: Option<String>,
    pub saga_step: String,
    pub saga_version: i64,
    pub saga_attempts: i64,
    pub saga_next_at: i64,
    pub saga_error: Option<String>,
    pub cancel_reason: Option<String>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl OrderRow {
    /// The stored status (an unknown name reads as `pending`, which only staff can move).
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Pending)
    }

    /// The stored saga step (an unknown name reads as `compensating`: undo, never charge).
    pub fn step(&self) -> Step {
        Step::parse(&self.saga_step).unwrap_or(Step::Compensating)
    }
}

const ORDER_COLUMNS: &str = "id, number, customer_id, email, cart_id, checkout_key, status, \
    currency, subtotal, discount_total, shipping_total, tax_total, total, amount_refunded, \
    coupon, pricing, shipping_address, billing_address, payment_token, payment_id, \
    reservation_id, saga_step, saga_version, saga_attempts, saga_next_at, saga_error, \
    cancel_reason, carrier, tracking_number, created_at, updated_at";

/// A line of an order.
#[derive(Debug, Clone, FromRow)]
pub struct LineRow {
    pub order_id: String,
    pub position: i64,
    pub sku: String,
    pub title: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub subtotal: i64,
    pub discount_total: i64,
    pub tax: i64,
    pub total: i64,
    pub weight_grams: Option<i64>,
    pub refunded_quantity: i64,
    pub explanation: String,
    pub allocations: String,
}

/// One entry of an order's status history.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    pub id: String,
    pub order_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub note: Option<String>,
    pub created_at: i64,
}

/// The next order number, `1001`, `1002`, … (in the caller's transaction).
pub async fn next_order_number(conn: &mut AnyConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'order_number' RETURNING value",
    )
    .fetch_one(conn)
    .await
}

pub async fn insert_order(conn: &mut AnyConnection, o: &OrderRow) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, \
         $28, $29, $30, $31)"
    )))
    .bind(&o.id)
    .bind(&o.number)
    .bind(&o.customer_id)
    .bind(&o.email)
    .bind(&o.cart_id)
    .bind(&o.checkout_key)
    .bind(&o.status)
    .bind(&o.currency)
    .bind(o.subtotal)
    .bind(o.discount_total)
    .bind(o.shipping_total)
    .bind(o.tax_total)
    .bind(o.total)
    .bind(o.amount_refunded)
    .bind(&o.coupon)
    .bind(&o.pricing)
    .bind(&o.shipping_address)
    .bind(&o.billing_address)
    .bind(&o.payment_token)
    .bind(&o.payment_id)
    .bind(&o.reservation_id)
    .bind(&o.saga_step)
    .bind(o.saga_version)
    .bind(o.saga_attempts)
    .bind(o.saga_next_at)
    .bind(&o.saga_error)
    .bind(&o.cancel_reason)
    .bind(&o.carrier)
    .bind(&o.tracking_number)
    .bind(o.created_at)
    .bind(o.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_line(conn: &mut AnyConnection, l: &LineRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO order_lines (order_id, position, sku, title, quantity, unit_price, subtotal, \
         discount_total, tax, total, weight_grams, refunded_quantity, explanation, allocations) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&l.order_id)
    .bind(l.position)
    .bind(&l.sku)
    .bind(&l.title)
    .bind(l.quantity)
    .bind(l.unit_price)
    .bind(l.subtotal)
    .bind(l.discount_total)
    .bind(l.tax)
    .bind(l.total)
    .bind(l.weight_grams)
    .bind(l.refunded_quantity)
    .bind(&l.explanation)
    .bind(&l.allocations)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_history(conn: &mut AnyConnection, h: &HistoryRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO order_history (id, order_id, from_status, to_status, actor, note, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&h.id)
    .bind(&h.order_id)
    .bind(&h.from_status)
    .bind(&h.to_status)
    .bind(&h.actor)
    .bind(&h.note)
    .bind(h.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_order(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn find_order_by_key(
    conn: &mut AnyConnection,
    key: &str,
) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE checkout_key = $1"
    )))
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub async fn lines(conn: &mut AnyConnection, order_id: &str) -> sqlx::Result<Vec<LineRow>> {
    sqlx::query_as(
        "SELECT order_id, position, sku, title, quantity, unit_price, subtotal, discount_total, \
         tax, total, weight_grams, refunded_quantity, explanation, allocations FROM order_lines \
         WHERE order_id = $1 ORDER BY position",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

pub async fn history(conn: &mut AnyConnection, order_id: &str) -> sqlx::Result<Vec<HistoryRow>> {
    sqlx::query_as(
        "SELECT id, order_id, from_status, to_status, actor, note, created_at FROM order_history \
         WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

/// Filters of the order list.
#[derive(Debug, Default)]
pub struct OrderFilter {
    pub customer_id: Option<String>,
    pub email: Option<String>,
    pub status: Option<String>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    pub starting_after: Option<String>,
}

/// Orders newest first, `limit` of them, after the cursor.
pub async fn list_orders(
    conn: &mut AnyConnection,
    f: &OrderFilter,
    limit: i64,
) -> sqlx::Result<Vec<OrderRow>> {
    let mut sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE 1 = 1");
    let mut n = 0;
    let mut next = |sql: &mut String, clause: &str| {
        n += 1;
        sql.push_str(&clause.replace('?', &format!("${n}")));
    };
    if f.customer_id.is_some() {
        next(&mut sql, " AND customer_id = ?");
    }
    if f.email.is_some() {
        next(&mut sql, " AND email = ?");
    }
    if f.status.is_some() {
        next(&mut sql, " AND status = ?");
    }
    if f.created_from.is_some() {
        next(&mut sql, " AND created_at >= ?");
    }
    if f.created_to.is_some() {
        next(&mut sql, " AND created_at < ?");
    }
    if f.starting_after.is_some() {
        next(&mut sql, " AND id < ?");
    }
    next(&mut sql, " ORDER BY id DESC LIMIT ?");
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for value in [&f.customer_id, &f.email, &f.status].into_iter().flatten() {
        query = query.bind(value.clone());
    }
    for value in [f.created_from, f.created_to].into_iter().flatten() {
        query = query.bind(value);
    }
    if let Some(after) = &f.starting_after {
        query = query.bind(after.clone());
    }
    query.bind(limit).fetch_all(conn).await
}

/// What a saga step writes beside its new step.
#[derive(Debug, Default)]
pub struct StepChange<'a> {
    pub reservation_id: Option<&'a str>,
    pub payment_id: Option<&'a str>,
    pub error: Option<&'a str>,
    pub cancel_reason: Option<&'a str>,
}

/// Moves the saga of order `id` to `step` if nobody else moved it since `version`; the new
/// version is `version + 1`. `next_at` is when the resumer may take it up.
pub async fn advance(
    conn: &mut AnyConnection,
    id: &str,
    version: i64,
    step: Step,
    change: &StepChange<'_>,
    next_at: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE orders SET saga_step = $3, saga_version = saga_version + 1, saga_attempts = 0, \
         saga_next_at = $4, reservation_id = COALESCE($5, reservation_id), \
         payment_id = COALESCE($6, payment_id), saga_error = $7, \
         cancel_reason = COALESCE($8, cancel_reason), updated_at = $9 \
         WHERE id = $1 AND saga_version = $2",
    )
    .bind(id)
    .bind(version)
    .bind(step.as_str())
    .bind(next_at)
    .bind(change.reservation_id)
    .bind(change.payment_id)
    .bind(change.error)
    .bind(change.cancel_reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed try of the current step and when to try again.
pub async fn record_attempt(
    conn: &mut AnyConnection,
    id: &str,
    version: i64,
    error: &str,
    next_at: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE orders SET saga_version = saga_version + 1, saga_attempts = saga_attempts + 1, \
         saga_error = $3, saga_next_at = $4, updated_at = $5 \
         WHERE id = $1 AND saga_version = $2",
    )
    .bind(id)
    .bind(version)
    .bind(error)
    .bind(next_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes an order held for the review of `payment_id` due now.
pub async fn wake_review(
    conn: &mut AnyConnection,
    order_id: &str,
    payment_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE orders SET saga_next_at = 0 WHERE id = $1 AND payment_id = $2 \
         AND saga_step = 'review'",
    )
    .bind(order_id)
    .bind(payment_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets an order's status if it still is `from`.
pub async fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    from: Status,
    to: Status,
    now: i64,
) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE orders SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(now)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Ids of unfinished sagas the resumer may take up now (`all`: regardless of `saga_next_at`,
/// as at start, when no driver of this process can be running).
pub async fn due_sagas(
    conn: &mut AnyConnection,
    now: i64,
    all: bool,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    // `all` lifts the time bound by comparing with the far future.
    let bound = if all { i64::MAX } else { now };
    sqlx::query_scalar(
        "SELECT id FROM orders WHERE saga_step <> 'done' AND saga_next_at <= $1 \
         ORDER BY saga_next_at LIMIT $2",
    )
    .bind(bound)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn set_fulfillment(
    conn: &mut AnyConnection,
    id: &str,
    carrier: &str,
    tracking_number: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE orders SET carrier = $2, tracking_number = $3 WHERE id = $1")
        .bind(id)
        .bind(carrier)
        .bind(tracking_number)
        .execute(conn)
        .await?;
    Ok(())
}

/// A refund of an order.
#[derive(Debug, Clone, FromRow)]
pub struct RefundRow {
    pub id: String,
    pub order_id: String,
    pub request_key: String,
    pub amount: i64,
    pub lines: String,
    pub restock: i64,
    pub reason: Option<String>,
    pub payment_refund_id: Option<String>,
    pub actor: String,
    pub created_at: i64,
}

pub async fn find_refund_by_key(
    conn: &mut AnyConnection,
    key: &str,
) -> sqlx::Result<Option<RefundRow>> {
    sqlx::query_as(
        "SELECT id, order_id, request_key, amount, lines, restock, reason, payment_refund_id, \
         actor, created_at FROM order_refunds WHERE request_key = $1",
    )
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub async fn insert_refund(conn: &mut AnyConnection, r: &RefundRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO order_refunds (id, order_id, request_key, amount, lines, restock, reason, \
         payment_refund_id, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&r.id)
    .bind(&r.order_id)
    .bind(&r.request_key)
    .bind(r.amount)
    .bind(&r.lines)
    .bind(r.restock)
    .bind(&r.reason)
    .bind(&r.payment_refund_id)
    .bind(&r.actor)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds a refund to the order's refunded amount, never beyond its total.
pub async fn add_refunded(
    conn: &mut AnyConnection,
    id: &str,
    amount: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE orders SET amount_refunded = amount_refunded + $2, updated_at = $3 \
         WHERE id = $1 AND amount_refunded + $2 <= total",
    )
    .bind(id)
    .bind(amount)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Counts units of a line as refunded, never beyond its quantity.
pub async fn add_refunded_units(
    conn: &mut AnyConnection,
    order_id: &str,
    sku: &str,
    quantity: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE order_lines SET refunded_quantity = refunded_quantity + $3 \
         WHERE order_id = $1 AND sku = $2 AND refunded_quantity + $3 <= quantity",
    )
    .bind(order_id)
    .bind(sku)
    .bind(quantity)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_allocations(
    conn: &mut AnyConnection,
    order_id: &str,
    sku: &str,
    allocations: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE order_lines SET allocations = $3 WHERE order_id = $1 AND sku = $2")
        .bind(order_id)
        .bind(sku)
        .bind(allocations)
        .execute(conn)
        .await?;
    Ok(())
}

/// A shipping rate as stored.
#[derive(Debug, Clone, FromRow)]
pub struct ShippingRateRow {
    pub id: String,
    pub name: String,
    pub countries: String,
    pub currency: String,
    pub amount: i64,
    pub min_weight_grams: i64,
    pub max_weight_grams: Option<i64>,
    pub free_over: Option<i64>,
    pub active: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ShippingRateRow {
    /// The rate as the totals use it.
    pub fn to_domain(&self) -> ShippingRate {
        ShippingRate {
            id: self.id.clone(),
            name: self.name.clone(),
            countries: self
                .countries
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            amount: self.amount,
            min_weight_grams: self.min_weight_grams,
            max_weight_grams: self.max_weight_grams,
            free_over: self.free_over,
        }
    }
}

const SHIPPING_COLUMNS: &str = "id, name, countries, currency, amount, min_weight_grams, \
                                max_weight_grams, free_over, active, created_at, updated_at";

pub async fn upsert_shipping_rate(
    conn: &mut AnyConnection,
    r: &ShippingRateRow,
) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO shipping_rates ({SHIPPING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
         $9, $10, $11) ON CONFLICT (id) DO UPDATE SET name = $2, countries = $3, currency = $4, \
         amount = $5, min_weight_grams = $6, max_weight_grams = $7, free_over = $8, active = $9, \
         updated_at = $11"
    )))
    .bind(&r.id)
    .bind(&r.name)
    .bind(&r.countries)
    .bind(&r.currency)
    .bind(r.amount)
    .bind(r.min_weight_grams)
    .bind(r.max_weight_grams)
    .bind(r.free_over)
    .bind(r.active)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn shipping_rates(
    conn: &mut AnyConnection,
    currency: Option<&str>,
) -> sqlx::Result<Vec<ShippingRateRow>> {
    match currency {
        Some(currency) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SHIPPING_COLUMNS} FROM shipping_rates WHERE currency = $1 AND active = 1 \
                 ORDER BY id"
            )))
            .bind(currency)
            .fetch_all(conn)
            .await
        }
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SHIPPING_COLUMNS} FROM shipping_rates ORDER BY id"
            )))
            .fetch_all(conn)
            .await
        }
    }
}

pub async fn find_shipping_rate(
    conn: &mut AnyConnection,
    id: &str,
) -> sqlx::Result<Option<ShippingRateRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SHIPPING_COLUMNS} FROM shipping_rates WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A tax rate as stored.
#[derive(Debug, Clone, FromRow)]
pub struct TaxRateRow {
    pub id: String,
    pub name: String,
    pub country: String,
    pub region: String,
    pub rate_bps: i64,
    pub inclusive: i64,
    pub applies_to_shipping: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TaxRateRow {
    /// The rate as the totals use it.
    pub fn to_domain(&self) -> TaxRate {
        TaxRate {
            id: self.id.clone(),
            name: self.name.clone(),
            country: self.country.clone(),
            region: self.region.clone(),
            rate_bps: self.rate_bps,
            inclusive: self.inclusive == 1,
            applies_to_shipping: self.applies_to_shipping == 1,
        }
    }
}

const TAX_COLUMNS: &str =
    "id, name, country, region, rate_bps, inclusive, applies_to_shipping, created_at, updated_at";

/// Inserts or replaces the rate of `(country, region)`.
pub async fn upsert_tax_rate(conn: &mut AnyConnection, r: &TaxRateRow) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tax_rates ({TAX_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (country, region) DO UPDATE SET name = $2, rate_bps = $5, inclusive = $6, \
         applies_to_shipping = $7, updated_at = $9"
    )))
    .bind(&r.id)
    .bind(&r.name)
    .bind(&r.country)
    .bind(&r.region)
    .bind(r.rate_bps)
    .bind(r.inclusive)
    .bind(r.applies_to_shipping)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn tax_rates(
    conn: &mut AnyConnection,
    country: Option<&str>,
) -> sqlx::Result<Vec<TaxRateRow>> {
    match country {
        Some(country) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {TAX_COLUMNS} FROM tax_rates WHERE country = $1 ORDER BY region"
            )))
            .bind(country)
            .fetch_all(conn)
            .await
        }
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {TAX_COLUMNS} FROM tax_rates ORDER BY country, region"
            )))
            .fetch_all(conn)
            .await
        }
    }
}

pub async fn find_tax_rate(
    conn: &mut AnyConnection,
    country: &str,
    region: &str,
) -> sqlx::Result<Option<TaxRateRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TAX_COLUMNS} FROM tax_rates WHERE country = $1 AND region = $2"
    )))
    .bind(country)
    .bind(region)
    .fetch_optional(conn)
    .await
}

pub async fn delete_tax_rate(conn: &mut AnyConnection, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM tax_rates WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a received `command.checkout`; a redelivery is a no-op.
pub async fn insert_command(
    conn: &mut AnyConnection,
    id: &str,
    payload: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO checkout_commands (id, payload, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(payload)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Commands not yet carried out, oldest first.
pub async fn open_commands(
    conn: &mut AnyConnection,
    limit: i64,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT id, payload, attempts FROM checkout_commands WHERE done_at IS NULL \
         ORDER BY created_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Marks a command carried out (with its order) or given up (with why).
pub async fn finish_command(
    conn: &mut AnyConnection,
    id: &str,
    order_id: Option<&str>,
    error: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE checkout_commands SET done_at = $2, order_id = $3, last_error = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(order_id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts a failed try of a command.
pub async fn retry_command(conn: &mut AnyConnection, id: &str, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE checkout_commands SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}
