//! `POST /api/v1/checkout` and `/api/v1/orders`: placing an order, reading orders, and their
//! lifecycle (cancel, fulfill, deliver, refund) with a status history, and public tracking.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use mercato_contracts::subjects::{
    ORDER_CANCELLED, ORDER_DELIVERED, ORDER_FULFILLED, ORDER_REFUNDED,
};
use mercato_kernel::auth::{Claims, MaybeClaims, RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::idempotency::IDEMPOTENCY_KEY;
use mercato_kernel::pagination::{Page, PageParams};
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json, Path, Query};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AppState, is_staff};
use crate::checkout::{Checkout, Order, PaymentMethod, PricingRecord, relay};
use crate::clients::Allocation;
use crate::domain::{Address, ShippingLine, Status, Step};
use crate::events;
use crate::saga::change_status;
use crate::store::{self, HistoryRow, LineRow, OrderFilter, OrderRow, RefundRow, StepChange};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/checkout", post(checkout))
        .route("/api/v1/orders", get(list_orders))
        .route("/api/v1/orders/{id}", get(get_order))
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .route("/api/v1/orders/{id}/fulfill", post(fulfill_order))
        .route("/api/v1/orders/{id}/deliver", post(deliver_order))
        .route("/api/v1/orders/{id}/refund", post(refund_order))
        .route("/api/v1/orders/{id}/tracking", get(track_order))
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        checkout,
        list_orders,
        get_order,
        cancel_order,
        fulfill_order,
        deliver_order,
        refund_order,
        track_order
    ),
    components(schemas(
        CheckoutRequest,
        Address,
        OrderView,
        OrderLineView,
        HistoryView,
        Status,
        FulfillRequest,
        RefundRequest,
        RefundLine,
        TrackingView
    ))
)]
pub struct Doc;

/// What checkout takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// `cart_…`, open and not empty.
    pub cart_id: String,
    /// Where the receipt goes.
    pub email: String,
    /// Where the order ships.
    pub shipping_address: Address,
    /// Billing address, when it differs.
    pub billing_address: Option<Address>,
    /// As payments takes it: `{"type": "card", "card": {number, exp_month, exp_year, cvc}}`
    /// or `{"type": "token", "token": "tok_…"}` (a token of the signed-in buyer's).
    #[schema(value_type = Object)]
    pub payment_method: Value,
}

/// A line of an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderLineView {
    /// SKU.
    pub sku: String,
    /// Product title.
    pub title: String,
    /// Units.
    pub quantity: i64,
    /// Units refunded.
    pub refunded_quantity: i64,
    /// Price of one unit.
    pub unit_price: i64,
    /// `unit_price × quantity`.
    pub subtotal: i64,
    /// Promotions' part.
    pub discount_total: i64,
    /// Tax of the line.
    pub tax: i64,
    /// `subtotal − discount_total`.
    pub total: i64,
    /// How the amounts were computed.
    #[schema(value_type = Object)]
    pub explanation: Value,
    /// Where inventory took the units from.
    #[schema(value_type = Vec<Object>)]
    pub allocations: Value,
}

/// One status change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryView {
    /// Before (absent for the first entry).
    pub from: Option<String>,
    /// After.
    pub to: String,
    /// Who: `usr_…`, `guest`, or `system` (the checkout saga).
    pub actor: String,
    /// Why.
    pub note: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// An order, amounts in minor units of `currency`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    /// `ord_…`.
    pub id: String,
    /// The number the buyer sees.
    pub number: String,
    /// Where the order is.
    pub status: Status,
    /// The buyer's account; absent for a guest.
    pub customer_id: Option<String>,
    /// Buyer's email.
    pub email: String,
    /// ISO 4217.
    pub currency: String,
    /// Σ line subtotals.
    pub subtotal: i64,
    /// Σ discounts.
    pub discount_total: i64,
    /// Shipping.
    pub shipping_total: i64,
    /// Σ tax.
    pub tax_total: i64,
    /// What the buyer pays.
    pub total: i64,
    /// Refunded so far.
    pub amount_refunded: i64,
    /// Coupon used.
    pub coupon: Option<String>,
    /// Lines.
    pub lines: Vec<OrderLineView>,
    /// The shipping rate used.
    pub shipping: Option<ShippingLine>,
    /// Promotions applied.
    #[schema(value_type = Vec<Object>)]
    pub applied_promotions: Vec<Value>,
    /// Ships to.
    pub shipping_address: Address,
    /// Billing address.
    pub billing_address: Option<Address>,
    /// `pay_…`.
    pub payment_id: Option<String>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Carrier, once fulfilled.
    pub carrier: Option<String>,
    /// Tracking number, once fulfilled.
    pub tracking_number: Option<String>,
    /// Status changes, oldest first.
    pub history: Vec<HistoryView>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

async fn order_view(checkout: &Checkout, order: OrderRow) -> Result<OrderView, ApiError> {
    let mut conn = checkout.db().pool().acquire().await?;
    let lines = store::lines(&mut conn, &order.id).await?;
    let history = store::history(&mut conn, &order.id).await?;
    drop(conn);
    let pricing: PricingRecord =
        serde_json::from_str(&order.pricing).map_err(ApiError::internal)?;
    let address = |json: &str| serde_json::from_str::<Address>(json).map_err(ApiError::internal);
    let json = |s: &str| serde_json::from_str(s).unwrap_or(Value::Null);
    Ok(OrderView {
        status: order.status(),
        shipping_address: address(&order.shipping_address)?,
        billing_address: order.billing_address.as_deref().map(address).transpose()?,
        lines: lines
            .into_iter()
            .map(|l| OrderLineView {
                explanation: json(&l.explanation),
                allocations: json(&l.allocations),
                sku: l.sku,
                title: l.title,
                quantity: l.quantity,
                refunded_quantity: l.refunded_quantity,
                unit_price: l.unit_price,
                subtotal: l.subtotal,
                discount_total: l.discount_total,
                tax: l.tax,
                total: l.total,
            })
            .collect(),
        history: history
            .into_iter()
            .map(|h| HistoryView {
                from: h.from_status,
                to: h.to_status,
                actor: h.actor,
                note: h.note,
                at: rfc3339(h.created_at),
            })
            .collect(),
        shipping: pricing.shipping,
        applied_promotions: pricing.applied_promotions,
        id: order.id,
        number: order.number,
        customer_id: order.customer_id,
        email: order.email,
        currency: order.currency,
        subtotal: order.subtotal,
        discount_total: order.discount_total,
        shipping_total: order.shipping_total,
        tax_total: order.tax_total,
        total: order.total,
        amount_refunded: order.amount_refunded,
        coupon: order.coupon,
        payment_id: order.payment_id,
        cancel_reason: order.cancel_reason,
        carrier: order.carrier,
        tracking_number: order.tracking_number,
        created_at: rfc3339(order.created_at),
        updated_at: rfc3339(order.updated_at),
    })
}

/// The `Idempotency-Key`, required here: 428 without one.
fn required_key(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "idempotency_key_required",
                "send an Idempotency-Key header: a retry with the same key never orders or \
                 charges twice",
            )
        })
}

fn payment_method(value: Value) -> Result<PaymentMethod, ApiError> {
    let invalid = || {
        ApiError::invalid_field(
            "payment_method.type",
            "invalid",
            "`card` with a `card` object, or `token` with a `token`",
        )
    };
    match value.get("type").and_then(Value::as_str) {
        Some("card") => Ok(PaymentMethod::Card(value)),
        Some("token") => value
            .get("token")
            .and_then(Value::as_str)
            .map(|t| PaymentMethod::Token(t.to_owned()))
            .ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

/// Check a cart out: the order is created `pending`, then stock is reserved and the payment
/// taken before the answer, which has the order's final status (`paid`, `cancelled` with a
/// reason, `on_hold` for a payment review, or still `pending` if a service is slow: the
/// order finishes in the background).
#[utoipa::path(
    post, path = "/api/v1/checkout", tag = "orders",
    params(("Idempotency-Key" = String, Header, description = "Required")),
    request_body = CheckoutRequest,
    responses(
        (status = 201, body = OrderView),
        (status = 404, description = "Unknown or foreign cart", body = Problem),
        (status = 409, description = "The cart was checked out already", body = Problem),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "No Idempotency-Key", body = Problem),
    ),
    security((), ("bearer" = []))
)]
async fn checkout(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    headers: HeaderMap,
    Json(body): Json<CheckoutRequest>,
) -> Result<(StatusCode, axum::Json<OrderView>), ApiError> {
    let key = required_key(&headers)?;
    mercato_kernel::id::parse_id("cart", &body.cart_id, "cart_id")?;
    let order = Order {
        cart_id: body.cart_id,
        email: body.email,
        shipping_address: body.shipping_address,
        billing_address: body.billing_address,
        payment_method: payment_method(body.payment_method)?,
    };
    let checkout = &state.checkout;
    let customer = caller.as_ref().map(|c| c.sub.as_str());
    let placed = checkout.place(customer, &key, order).await?;
    checkout.saga().drive(&placed.id).await;
    let order = store::find_order(&mut *checkout.db().pool().acquire().await?, &placed.id)
        .await?
        .unwrap_or(placed);
    Ok((
        StatusCode::CREATED,
        axum::Json(order_view(checkout, order).await?),
    ))
}

/// Filters of `GET /api/v1/orders`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OrderQuery {
    /// Only orders in this status.
    pub status: Option<String>,
    /// Staff: only this buyer's email.
    pub email: Option<String>,
    /// Staff: only this customer's.
    pub customer_id: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<String>,
    /// Created before (RFC 3339).
    pub created_to: Option<String>,
    /// Page size, 1 to 100.
    pub limit: Option<u32>,
    /// Last id of the previous page.
    pub starting_after: Option<String>,
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_micros())
                .map_err(|_| ApiError::invalid_field(field, "invalid_time", "an RFC 3339 time"))
        })
        .transpose()
}

/// The caller's orders, newest first; staff see every order and can filter by buyer.
#[utoipa::path(
    get, path = "/api/v1/orders", tag = "orders",
    params(OrderQuery),
    responses((status = 200, body = Page<OrderView>), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn list_orders(
    State(state): State<AppState>,
    claims: Claims,
    Query(query): Query<OrderQuery>,
) -> Result<axum::Json<Page<OrderView>>, ApiError> {
    let page = PageParams {
        limit: query.limit,
        starting_after: query.starting_after.clone(),
    }
    .parse()?;
    if let Some(status) = &query.status
        && Status::parse(status).is_none()
    {
        return Err(ApiError::invalid_field(
            "status",
            "invalid_status",
            "not an order status",
        ));
    }
    let staff = is_staff(Some(&claims));
    let filter = OrderFilter {
        customer_id: if staff {
            query.customer_id.clone()
        } else {
            Some(claims.sub.clone())
        },
        email: query
            .email
            .as_ref()
            .filter(|_| staff)
            .map(|e| e.trim().to_ascii_lowercase()),
        status: query.status.clone(),
        created_from: parse_time("created_from", query.created_from.as_deref())?,
        created_to: parse_time("created_to", query.created_to.as_deref())?,
        starting_after: page.after.clone(),
    };
    let checkout = &state.checkout;
    let rows = store::list_orders(
        &mut *checkout.db().pool().acquire().await?,
        &filter,
        page.fetch_limit(),
    )
    .await?;
    let page = Page::from_rows(rows, &page, |o| o.id.clone());
    let mut data = Vec::with_capacity(page.data.len());
    for row in page.data {
        data.push(order_view(checkout, row).await?);
    }
    Ok(axum::Json(Page {
        data,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    }))
}

/// `?email=` for a guest's order.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct GuestQuery {
    /// The order's email, for an order placed without an account.
    pub email: Option<String>,
}

/// The order `id` if the caller may see it: its customer, staff, or (for a guest order)
/// whoever knows its email; 404 otherwise.
async fn visible_order(
    checkout: &Checkout,
    caller: Option<&Claims>,
    id: &str,
    email: Option<&str>,
) -> Result<OrderRow, ApiError> {
    mercato_kernel::id::parse_id("ord", id, "id")?;
    let order = store::find_order(&mut *checkout.db().pool().acquire().await?, id)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let allowed = is_staff(caller)
        || match &order.customer_id {
            Some(owner) => caller.is_some_and(|c| &c.sub == owner),
            None => email.is_some_and(|e| e.trim().eq_ignore_ascii_case(&order.email)),
        };
    if allowed {
        Ok(order)
    } else {
        Err(ApiError::not_found("order"))
    }
}

/// One order with its lines and history.
#[utoipa::path(
    get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path), GuestQuery),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)),
    security((), ("bearer" = []))
)]
async fn get_order(
    State(state): State<AppState>,
    MaybeClaims(caller): MaybeClaims,
    Path(id): Path<String>,
    Query(query): Query<GuestQuery>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let order = visible_order(
        &state.checkout,
        caller.as_ref(),
        &id,
        query.email.as_deref(),
    )
    .await?;
    Ok(axum::Json(order_view(&state.checkout, order).await?))
}

fn illegal(order: &OrderRow, to: Status) -> ApiError {
    ApiError::conflict(
        "illegal_transition",
        format!("a {} order cannot become {}", order.status, to.as_str()),
    )
    .with_extension("status", &order.status)
}

/// Puts `units` of each line back on hand where inventory took them from; `key` prefixes the
/// adjustments' idempotency keys so a retry restocks once.
async fn restock(
    checkout: &Checkout,
    order: &OrderRow,
    units: &[(LineRow, i64)],
    key: &str,
) -> Result<(), ApiError> {
    for (line, quantity) in units {
        let allocations: Vec<Allocation> =
            serde_json::from_str(&line.allocations).unwrap_or_default();
        let mut left = *quantity;
        for a in allocations {
            let n = left.min(a.quantity);
            if n <= 0 {
                break;
            }
            checkout
                .clients()
                .restock(
                    &line.sku,
                    &a.warehouse_id,
                    n,
                    &order.id,
                    &format!("{key}:{}:{}", line.sku, a.warehouse_id),
                )
                .await
                .map_err(relay)?;
            left -= n;
        }
    }
    Ok(())
}

/// Cancel an order that has not shipped: everything still paid is refunded and the stock goes
/// back (`on_hold`: the payment is cancelled and the hold released). The buyer or staff.
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = OrderView),
        (status = 404, body = Problem),
        (status = 409, description = "Shipped, cancelled already, or checkout still running", body = Problem),
    ),
    security(("bearer" = []))
)]
async fn cancel_order(
    State(state): State<AppState>,
    claims: Claims,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let checkout = &state.checkout;
    let order = visible_order(checkout, Some(&claims), &id, None).await?;
    let reason = format!("cancelled by {}", claims.sub);
    match order.status() {
        Status::Pending => {
            return Err(ApiError::conflict(
                "checkout_in_progress",
                "the order is being paid; try again in a moment",
            )
            .with_retry_after(1));
        }
        Status::OnHold if order.step() == Step::Review => {
            let change = StepChange {
                cancel_reason: Some(&reason),
                ..StepChange::default()
            };
            let moved = store::advance(
                &mut *checkout.db().pool().acquire().await?,
                &order.id,
                order.saga_version,
                Step::Compensating,
                &change,
                now_micros(),
                now_micros(),
            )
            .await?;
            if !moved {
                return Err(ApiError::conflict(
                    "concurrent_update",
                    "the order changed meanwhile; read it again",
                ));
            }
            checkout.saga().drive(&order.id).await;
        }
        Status::Paid | Status::PartiallyRefunded => {
            let lines =
                store::lines(&mut *checkout.db().pool().acquire().await?, &order.id).await?;
            let rest = order.total - order.amount_refunded;
            if let (Some(payment_id), true) = (order.payment_id.as_deref(), rest > 0) {
                let key = format!("{}:cancel-refund", order.id);
                checkout
                    .clients()
                    .refund_payment(payment_id, Some(rest), &reason, &key)
                    .await
                    .map_err(relay)?;
            }
            let units: Vec<(LineRow, i64)> = lines
                .iter()
                .map(|l| (l.clone(), l.quantity - l.refunded_quantity))
                .filter(|(_, n)| *n > 0)
                .collect();
            restock(
                checkout,
                &order,
                &units,
                &format!("{}:cancel-restock", order.id),
            )
            .await?;
            let now = now_micros();
            let mut tx = checkout.db().begin().await?;
            if rest > 0 && !store::add_refunded(&mut tx, &order.id, rest, now).await? {
                return Err(ApiError::conflict(
                    "concurrent_update",
                    "the order changed meanwhile",
                ));
            }
            if !change_status(
                &mut tx,
                &order,
                Status::Cancelled,
                &claims.sub,
                Some(&reason),
                now,
            )
            .await?
            {
                return Err(illegal(&order, Status::Cancelled));
            }
            let mut cancelled = order.clone();
            cancelled.status = Status::Cancelled.as_str().to_owned();
            cancelled.amount_refunded = order.total;
            events::publish(
                &mut tx,
                ORDER_CANCELLED,
                &cancelled,
                &lines,
                Some(&reason),
                &claims.sub,
            )
            .await?;
            events::email(&mut tx, "order_cancelled", &cancelled, &lines).await?;
            tx.commit().await?;
        }
        _ => return Err(illegal(&order, Status::Cancelled)),
    }
    let order = visible_order(checkout, Some(&claims), &id, None).await?;
    Ok(axum::Json(order_view(checkout, order).await?))
}

/// How an order ships.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FulfillRequest {
    /// 1 to 50 characters, e.g. `DHL`.
    pub carrier: String,
    /// 1 to 100 characters.
    pub tracking_number: String,
}

/// Ship a paid order (staff).
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/fulfill", tag = "orders",
    params(("id" = String, Path)),
    request_body = FulfillRequest,
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn fulfill_order(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Path(id): Path<String>,
    Json(body): Json<FulfillRequest>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let mut errors = Vec::new();
    let carrier = body.carrier.trim();
    let tracking = body.tracking_number.trim();
    if carrier.is_empty() || carrier.len() > 50 {
        errors.push(FieldError::new(
            "carrier",
            "invalid_length",
            "1 to 50 characters",
        ));
    }
    if tracking.is_empty() || tracking.len() > 100 {
        errors.push(FieldError::new(
            "tracking_number",
            "invalid_length",
            "1 to 100 characters",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let checkout = &state.checkout;
    let order = visible_order(checkout, Some(&claims), &id, None).await?;
    let now = now_micros();
    let mut tx = checkout.db().begin().await?;
    let note = format!("{carrier} {tracking}");
    if !change_status(
        &mut tx,
        &order,
        Status::Fulfilled,
        &claims.sub,
        Some(&note),
        now,
    )
    .await?
    {
        return Err(illegal(&order, Status::Fulfilled));
    }
    store::set_fulfillment(&mut tx, &order.id, carrier, tracking).await?;
    let mut shipped = order.clone();
    shipped.status = Status::Fulfilled.as_str().to_owned();
    shipped.carrier = Some(carrier.to_owned());
    shipped.tracking_number = Some(tracking.to_owned());
    let lines = store::lines(&mut tx, &order.id).await?;
    events::publish(
        &mut tx,
        ORDER_FULFILLED,
        &shipped,
        &lines,
        None,
        &claims.sub,
    )
    .await?;
    events::email(&mut tx, "order_shipped", &shipped, &lines).await?;
    tx.commit().await?;
    Ok(axum::Json(order_view(checkout, shipped).await?))
}

/// Mark a shipped order delivered (staff).
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/deliver", tag = "orders",
    params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []))
)]
async fn deliver_order(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let checkout = &state.checkout;
    let order = visible_order(checkout, Some(&claims), &id, None).await?;
    let now = now_micros();
    let mut tx = checkout.db().begin().await?;
    if !change_status(&mut tx, &order, Status::Delivered, &claims.sub, None, now).await? {
        return Err(illegal(&order, Status::Delivered));
    }
    let mut delivered = order.clone();
    delivered.status = Status::Delivered.as_str().to_owned();
    let lines = store::lines(&mut tx, &order.id).await?;
    events::publish(
        &mut tx,
        ORDER_DELIVERED,
        &delivered,
        &lines,
        None,
        &claims.sub,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(order_view(checkout, delivered).await?))
}

/// Units of a line to refund.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLine {
    /// The line's SKU.
    pub sku: String,
    /// Units, at most those not yet refunded.
    pub quantity: i64,
}

/// A refund: an amount, or lines (their share of what was paid).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OrderRefundRequest)]
pub struct RefundRequest {
    /// Minor units, at most what is left to refund.
    pub amount: Option<i64>,
    /// Lines to refund.
    pub lines: Option<Vec<RefundLine>>,
    /// Put refunded line units back in stock (default false).
    #[serde(default)]
    pub restock: bool,
    /// Why, up to 200 characters.
    pub reason: Option<String>,
}

/// What refunding `lines` gives back: each unit's share of its line's total (plus its tax
/// when tax was added on top).
fn lines_amount(
    order_lines: &[LineRow],
    wanted: &[RefundLine],
    tax_inclusive: bool,
) -> Result<(i64, Vec<(LineRow, i64)>), ApiError> {
    let mut amount = 0i64;
    let mut units = Vec::new();
    for (i, want) in wanted.iter().enumerate() {
        let line = order_lines
            .iter()
            .find(|l| l.sku == want.sku)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    format!("lines[{i}].sku"),
                    "unknown_line",
                    "not a line of this order",
                )
            })?;
        if want.quantity < 1 || want.quantity > line.quantity - line.refunded_quantity {
            return Err(ApiError::invalid_field(
                format!("lines[{i}].quantity"),
                "out_of_range",
                format!(
                    "1 to {} (units not yet refunded)",
                    line.quantity - line.refunded_quantity
                ),
            ));
        }
        let paid = line.total + if tax_inclusive { 0 } else { line.tax };
        let share = i128::from(paid) * i128::from(want.quantity) / i128::from(line.quantity.max(1));
        amount = amount
            .checked_add(i64::try_from(share).unwrap_or(i64::MAX))
            .ok_or_else(|| ApiError::invalid_field("lines", "amount_too_large", "too large"))?;
        units.push((line.clone(), want.quantity));
    }
    Ok((amount, units))
}

/// Refund an amount or lines of a paid order (staff); requires `Idempotency-Key`.
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/refund", tag = "orders",
    params(("id" = String, Path), ("Idempotency-Key" = String, Header, description = "Required")),
    request_body = RefundRequest,
    responses(
        (status = 200, body = OrderView),
        (status = 404, body = Problem),
        (status = 409, description = "Not refundable, or more than is left", body = Problem),
        (status = 422, body = Problem),
        (status = 428, body = Problem),
    ),
    security(("bearer" = []))
)]
async fn refund_order(
    State(state): State<AppState>,
    RequireRole(claims, _): RequireRole<Staff>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<RefundRequest>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let key = required_key(&headers)?;
    let request_key = format!("{id}:{key}");
    let checkout = &state.checkout;
    let order = visible_order(checkout, Some(&claims), &id, None).await?;
    if store::find_refund_by_key(&mut *checkout.db().pool().acquire().await?, &request_key)
        .await?
        .is_some()
    {
        return Ok(axum::Json(order_view(checkout, order).await?));
    }
    if body.reason.as_ref().is_some_and(|r| r.len() > 200) {
        return Err(ApiError::invalid_field(
            "reason",
            "invalid_length",
            "up to 200 characters",
        ));
    }
    let order_lines = store::lines(&mut *checkout.db().pool().acquire().await?, &order.id).await?;
    let pricing: PricingRecord =
        serde_json::from_str(&order.pricing).map_err(ApiError::internal)?;
    let (amount, units) = match (body.amount, &body.lines) {
        (Some(amount), None) if amount > 0 => (amount, Vec::new()),
        (None, Some(lines)) if !lines.is_empty() => {
            lines_amount(&order_lines, lines, pricing.tax_inclusive)?
        }
        _ => {
            return Err(ApiError::invalid_field(
                "amount",
                "invalid",
                "give a positive `amount` or a non-empty `lines`, not both",
            ));
        }
    };
    if !order.status().is_refundable() {
        return Err(illegal(&order, Status::Refunded));
    }
    let left = order.total - order.amount_refunded;
    if amount > left {
        return Err(ApiError::conflict(
            "refund_exceeds_balance",
            format!("{amount} asked, {left} left to refund"),
        )
        .with_extension("refundable", left));
    }
    let payment_id = order
        .payment_id
        .as_deref()
        .ok_or_else(|| ApiError::conflict("not_paid", "the order has no payment"))?;
    let reason = body.reason.clone().unwrap_or_else(|| "refund".to_owned());
    let refund = checkout
        .clients()
        .refund_payment(
            payment_id,
            Some(amount),
            &reason,
            &format!("{}:refund:{key}", order.id),
        )
        .await
        .map_err(relay)?;
    let now = now_micros();
    let to = if amount == left {
        Status::Refunded
    } else {
        Status::PartiallyRefunded
    };
    let mut tx = checkout.db().begin().await?;
    let row = RefundRow {
        id: mercato_kernel::id::new_id("orf"),
        order_id: order.id.clone(),
        request_key,
        amount,
        lines: serde_json::to_string(&body.lines.clone().unwrap_or_default())
            .map_err(ApiError::internal)?,
        restock: i64::from(body.restock),
        reason: body.reason.clone(),
        payment_refund_id: Some(refund.id),
        actor: claims.sub.clone(),
        created_at: now,
    };
    store::insert_refund(&mut tx, &row).await?;
    if !store::add_refunded(&mut tx, &order.id, amount, now).await? {
        return Err(ApiError::conflict(
            "refund_exceeds_balance",
            "the order changed meanwhile",
        ));
    }
    for (line, n) in &units {
        if !store::add_refunded_units(&mut tx, &order.id, &line.sku, *n).await? {
            return Err(ApiError::conflict(
                "concurrent_update",
                "the order changed meanwhile",
            ));
        }
    }
    if !change_status(&mut tx, &order, to, &claims.sub, Some(&reason), now).await? {
        return Err(illegal(&order, to));
    }
    let mut refunded = order.clone();
    refunded.status = to.as_str().to_owned();
    refunded.amount_refunded += amount;
    events::publish(
        &mut tx,
        ORDER_REFUNDED,
        &refunded,
        &order_lines,
        Some(&reason),
        &claims.sub,
    )
    .await?;
    tx.commit().await?;
    if body.restock && !units.is_empty() {
        restock(checkout, &order, &units, &format!("{}:restock", row.id)).await?;
    }
    let order = visible_order(checkout, Some(&claims), &id, None).await?;
    Ok(axum::Json(order_view(checkout, order).await?))
}

/// `?email=&number=` of the tracking page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TrackingQuery {
    /// The order's email.
    pub email: String,
    /// The order's number.
    pub number: String,
}

/// What the public tracking page shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrackingView {
    /// The order's number.
    pub number: String,
    /// Where it is.
    pub status: Status,
    /// Carrier, once shipped.
    pub carrier: Option<String>,
    /// Tracking number, once shipped.
    pub tracking_number: Option<String>,
    /// `(sku, title, quantity)` of each line.
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<Value>,
    /// Status changes (no actors), oldest first.
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<Value>,
}

/// An order's progress for whoever knows its number and email (no account needed).
#[utoipa::path(
    get, path = "/api/v1/orders/{id}/tracking", tag = "orders",
    params(("id" = String, Path), TrackingQuery),
    responses((status = 200, body = TrackingView), (status = 404, body = Problem)),
)]
async fn track_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<TrackingQuery>,
) -> Result<axum::Json<TrackingView>, ApiError> {
    mercato_kernel::id::parse_id("ord", &id, "id")?;
    let checkout = &state.checkout;
    let mut conn = checkout.db().pool().acquire().await?;
    let order = store::find_order(&mut conn, &id)
        .await?
        .filter(|o| {
            o.number == query.number.trim() && o.email.eq_ignore_ascii_case(query.email.trim())
        })
        .ok_or_else(|| ApiError::not_found("order"))?;
    let lines = store::lines(&mut conn, &order.id).await?;
    let history: Vec<HistoryRow> = store::history(&mut conn, &order.id).await?;
    Ok(axum::Json(TrackingView {
        status: order.status(),
        number: order.number,
        carrier: order.carrier,
        tracking_number: order.tracking_number,
        lines: lines
            .into_iter()
            .map(|l| serde_json::json!({"sku": l.sku, "title": l.title, "quantity": l.quantity}))
            .collect(),
        history: history
            .into_iter()
            .map(|h| serde_json::json!({"status": h.to_status, "at": rfc3339(h.created_at)}))
            .collect(),
    }))
}
