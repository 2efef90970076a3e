//! Placing an order: a cart, checked and priced, becomes a `pending` order in one
//! transaction (with the cart marked converted and `order.created` in the outbox); the
//! [`Saga`] then reserves, charges and settles it.

use std::sync::Arc;

use axum::http::StatusCode;
use mercato_kernel::client::CallError;
use mercato_kernel::{ApiError, FieldError};
use mercato_store::{Db, Tx, is_unique_violation, now_micros};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clients::{Clients, Quote};
use crate::domain::{self, Address, Status, Step, Totals, TotalsError};
use crate::events;
use crate::saga::Saga;
use crate::store::{self, CartRow, HistoryRow, ItemRow, LineRow, OrderRow};

/// How a buyer pays.
#[derive(Debug, Clone)]
pub enum PaymentMethod {
    /// A card token of the buyer's (`tok_…`).
    Token(String),
    /// A card to tokenize now, as payments takes it (`{"type": "card", "card": {…}}`).
    Card(Value),
}

/// What checkout needs besides the cart.
#[derive(Debug, Clone)]
pub struct Order {
    /// `cart_…`.
    pub cart_id: String,
    /// Where the receipt goes.
    pub email: String,
    /// Where it ships; decides shipping and tax.
    pub shipping_address: Address,
    /// Billing address, when it differs.
    pub billing_address: Option<Address>,
    /// How to pay.
    pub payment_method: PaymentMethod,
}

/// Why an order was not placed.
#[derive(Debug)]
pub enum CheckoutError {
    /// The request is wrong (4xx); repeating it will not help.
    Refused(ApiError),
    /// A service needed is unavailable; the same request may work later.
    Transient(String),
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        match e {
            CheckoutError::Refused(e) => e,
            CheckoutError::Transient(detail) => ApiError::unavailable(detail).with_retry_after(2),
        }
    }
}

impl From<ApiError> for CheckoutError {
    fn from(e: ApiError) -> Self {
        if e.status().is_server_error() {
            Self::Transient(e.detail().to_owned())
        } else {
            Self::Refused(e)
        }
    }
}

impl From<sqlx::Error> for CheckoutError {
    fn from(e: sqlx::Error) -> Self {
        Self::Refused(e.into())
    }
}

/// A callee's refusal as this service's problem: same status, code, detail and field errors;
/// anything else is 503.
pub fn relay(err: CallError) -> ApiError {
    match err {
        CallError::Refused {
            status,
            code,
            detail,
            problem,
            ..
        } => {
            let errors: Vec<FieldError> = problem
                .get("errors")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|e| {
                            let text = |k: &str| {
                                e.get(k)
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            FieldError::new(text("field"), text("code"), text("message"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let status = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                // Our own credentials were refused: a set-up problem, not the buyer's.
                return ApiError::unavailable(format!("a service refused orders' call: {detail}"));
            } else {
                status
            };
            if !errors.is_empty() && status == StatusCode::UNPROCESSABLE_ENTITY {
                return ApiError::validation(errors);
            }
            let mut e = ApiError::new(status, code, detail);
            if let Some(map) = problem.as_object() {
                for (k, v) in map {
                    if !matches!(
                        k.as_str(),
                        "type" | "title" | "status" | "detail" | "code" | "errors" | "instance"
                    ) {
                        e = e.with_extension(k, v);
                    }
                }
            }
            e
        }
        other => ApiError::unavailable(other.to_string()).with_retry_after(2),
    }
}

/// A cart's prices: the catalog quote plus shipping and tax.
#[derive(Debug, Clone)]
pub struct Priced {
    /// The catalog's quote.
    pub quote: Quote,
    /// Totals with shipping and tax.
    pub totals: Totals,
    /// Whether the tax rate used includes tax in prices.
    pub tax_inclusive: bool,
}

/// Places orders and prices carts.
#[derive(Clone)]
pub struct Checkout {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clients: Clients,
    saga: Saga,
}

/// Serialized into `orders.pricing`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PricingRecord {
    /// Promotions applied.
    pub applied_promotions: Vec<Value>,
    /// The shipping picked.
    pub shipping: Option<domain::ShippingLine>,
    /// Whether prices included tax.
    pub tax_inclusive: bool,
}

impl Checkout {
    /// Checkout over `db`, calling other services with `clients`.
    pub fn new(db: Db, clients: Clients, saga: Saga) -> Self {
        Self {
            inner: Arc::new(Inner { db, clients, saga }),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The other services.
    pub fn clients(&self) -> &Clients {
        &self.inner.clients
    }

    /// The saga driver.
    pub fn saga(&self) -> &Saga {
        &self.inner.saga
    }

    /// Prices `items` for `cart` (and a destination, when known).
    pub async fn price(
        &self,
        cart: &CartRow,
        items: &[ItemRow],
        destination: Option<(&str, Option<&str>)>,
    ) -> Result<Priced, ApiError> {
        let lines: Vec<(String, i64)> = items.iter().map(|i| (i.sku.clone(), i.quantity)).collect();
        let quote = self
            .inner
            .clients
            .quote(
                &cart.currency,
                &lines,
                cart.coupon.as_deref(),
                cart.customer_id.as_deref(),
            )
            .await
            .map_err(relay)?;
        let mut conn = self.inner.db.pool().acquire().await?;
        let shipping: Vec<_> = store::shipping_rates(&mut conn, Some(&cart.currency))
            .await?
            .iter()
            .map(store::ShippingRateRow::to_domain)
            .collect();
        let country = destination.map(|(c, _)| c);
        let taxes: Vec<_> = match country {
            Some(country) => store::tax_rates(&mut conn, Some(country))
                .await?
                .iter()
                .map(store::TaxRateRow::to_domain)
                .collect(),
            None => Vec::new(),
        };
        drop(conn);
        let tax_inclusive = destination
            .and_then(|(c, r)| domain::pick_tax_rate(&taxes, c, r))
            .is_some_and(|r| r.inclusive);
        let totals = domain::totals(quote.lines.clone(), destination, &shipping, &taxes).map_err(
            |e| match e {
                TotalsError::Unshippable { .. } => ApiError::invalid_field(
                    "shipping_address.country",
                    "unshippable",
                    e.to_string(),
                ),
                TotalsError::TooLarge => {
                    ApiError::invalid_field("items", "amount_too_large", e.to_string())
                }
            },
        )?;
        Ok(Priced {
            quote,
            totals,
            tax_inclusive,
        })
    }

    /// Places an order for `order.cart_id` as `customer` (a guest when `None`). `key` makes
    /// the call idempotent: the same key answers the order it placed before.
    pub async fn place(
        &self,
        customer: Option<&str>,
        key: &str,
        mut order: Order,
    ) -> Result<OrderRow, CheckoutError> {
        let db = &self.inner.db;
        // Scoped to the caller and the cart: guests share one caller name, and one guest's
        // key must never answer another guest's order.
        let checkout_key = format!("{}:{}:{key}", customer.unwrap_or("guest"), order.cart_id);
        if let Some(existing) =
            store::find_order_by_key(&mut *db.pool().acquire().await?, &checkout_key).await?
        {
            return Ok(existing);
        }
        check(&mut order)?;
        let cart = store::find_cart(&mut *db.pool().acquire().await?, &order.cart_id)
            .await?
            .filter(|c| c.customer_id.is_none() || c.customer_id.as_deref() == customer)
            .ok_or_else(|| CheckoutError::Refused(ApiError::not_found("cart")))?;
        if cart.status != "open" {
            return Err(CheckoutError::Refused(ApiError::conflict(
                "cart_not_open",
                format!("the cart is {}", cart.status),
            )));
        }
        let items = store::items(&mut *db.pool().acquire().await?, &cart.id).await?;
        if items.is_empty() {
            return Err(CheckoutError::Refused(ApiError::invalid_field(
                "cart_id",
                "cart_empty",
                "the cart has no items",
            )));
        }
        let address = &order.shipping_address;
        let priced = self
            .price(
                &cart,
                &items,
                Some((&address.country, address.region.as_deref())),
            )
            .await?;
        let token = self.payment_token(customer, &order.payment_method).await?;
        let now = now_micros();
        let id = mercato_kernel::id::new_id("ord");
        let pricing = PricingRecord {
            applied_promotions: priced.quote.applied_promotions.clone(),
            shipping: priced.totals.shipping.clone(),
            tax_inclusive: priced.tax_inclusive,
        };
        let totals = &priced.totals;
        let mut row = OrderRow {
            id: id.clone(),
            number: String::new(),
            customer_id: customer.map(str::to_owned),
            email: order.email.clone(),
            cart_id: cart.id.clone(),
            checkout_key: checkout_key.clone(),
            status: Status::Pending.as_str().to_owned(),
            currency: cart.currency.clone(),
            subtotal: totals.subtotal,
            discount_total: totals.discount_total,
            shipping_total: totals.shipping.as_ref().map_or(0, |s| s.amount),
            tax_total: totals.tax_total,
            total: totals.total,
            amount_refunded: 0,
            coupon: cart.coupon.clone(),
            pricing: serde_json::to_string(&pricing).map_err(ApiError::internal)?,
            shipping_address: serde_json::to_string(&order.shipping_address)
                .map_err(ApiError::internal)?,
            billing_address: order
                .billing_address
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(ApiError::internal)?,
            payment_token: token,
            payment_id: None,
            reservation_id: None,
            saga_step: Step::Created.as_str().to_owned(),
            saga_version: 0,
            saga_attempts: 0,
            saga_next_at: now + self.inner.saga.lease_micros(),
            saga_error: None,
            cancel_reason: None,
            carrier: None,
            tracking_number: None,
            created_at: now,
            updated_at: now,
        };
        let lines: Vec<LineRow> = totals
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| LineRow {
                order_id: id.clone(),
                position: i64::try_from(i).unwrap_or(i64::MAX),
                sku: l.quoted.sku.clone(),
                title: l.quoted.title.clone(),
                quantity: l.quoted.quantity,
                unit_price: l.quoted.unit_price,
                subtotal: l.quoted.subtotal,
                discount_total: l.quoted.discount_total,
                tax: l.tax.as_ref().map_or(0, |t| t.amount),
                total: l.quoted.total,
                weight_grams: l.quoted.weight_grams,
                refunded_quantity: 0,
                explanation: json!({
                    "unit_price": l.quoted.unit_price,
                    "quantity": l.quoted.quantity,
                    "subtotal": l.quoted.subtotal,
                    "discounts": l.quoted.discounts,
                    "tax": l.tax,
                })
                .to_string(),
                allocations: "[]".to_owned(),
            })
            .collect();
        let mut tx = db.begin().await.map_err(ApiError::from)?;
        match insert(&mut tx, &mut row, &lines, customer).await {
            Ok(()) => {}
            Err(InsertError::CartTaken) => {
                return Err(CheckoutError::Refused(ApiError::conflict(
                    "cart_not_open",
                    "the cart was checked out already",
                )));
            }
            Err(InsertError::Sql(e)) if is_unique_violation(&e) => {
                // The same key raced us: answer its order.
                drop(tx);
                return store::find_order_by_key(&mut *db.pool().acquire().await?, &checkout_key)
                    .await?
                    .ok_or_else(|| {
                        CheckoutError::Refused(ApiError::conflict(
                            "cart_not_open",
                            "the cart was checked out already",
                        ))
                    });
            }
            Err(InsertError::Sql(e)) => return Err(e.into()),
            Err(InsertError::Api(e)) => return Err(e.into()),
        }
        tx.commit().await?;
        self.inner.saga.maybe_halt(&row.id, Step::Created);
        Ok(row)
    }

    /// The `tok_…` to charge: the buyer's own token, or a card tokenized now.
    async fn payment_token(
        &self,
        customer: Option<&str>,
        method: &PaymentMethod,
    ) -> Result<String, CheckoutError> {
        let clients = &self.inner.clients;
        let refused = |e: CallError| {
            if e.is_transient() {
                CheckoutError::Transient(e.to_string())
            } else {
                CheckoutError::Refused(relay(e))
            }
        };
        match method {
            PaymentMethod::Token(token) => {
                let unknown = || {
                    CheckoutError::Refused(ApiError::invalid_field(
                        "payment_method.token",
                        "unknown_token",
                        "no such payment method of yours",
                    ))
                };
                // Orders calls payments as staff, who may use any token: the ownership
                // check is ours to make. Guests have no tokens.
                let customer = customer.ok_or_else(unknown)?;
                let card = match clients.card(token).await {
                    Ok(card) => card,
                    Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => return Err(unknown()),
                    Err(e) => return Err(refused(e)),
                };
                if card.owner != customer {
                    return Err(unknown());
                }
                Ok(card.token)
            }
            PaymentMethod::Card(card) => clients
                .tokenize(card)
                .await
                .map(|c| c.token)
                .map_err(refused),
        }
    }
}

enum InsertError {
    CartTaken,
    Sql(sqlx::Error),
    Api(ApiError),
}

impl From<sqlx::Error> for InsertError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

async fn insert(
    tx: &mut Tx,
    row: &mut OrderRow,
    lines: &[LineRow],
    actor: Option<&str>,
) -> Result<(), InsertError> {
    row.number = store::next_order_number(tx).await?.to_string();
    store::insert_order(tx, row).await?;
    for line in lines {
        store::insert_line(tx, line).await?;
    }
    store::insert_history(
        tx,
        &HistoryRow {
            id: mercato_kernel::id::new_id("oh"),
            order_id: row.id.clone(),
            from_status: None,
            to_status: Status::Pending.as_str().to_owned(),
            actor: actor.unwrap_or("guest").to_owned(),
            note: None,
            created_at: row.created_at,
        },
    )
    .await?;
    if !store::convert_cart(tx, &row.cart_id, &row.id, row.created_at).await? {
        return Err(InsertError::CartTaken);
    }
    events::publish(
        tx,
        mercato_contracts::subjects::ORDER_CREATED,
        row,
        lines,
        None,
        actor.unwrap_or("guest"),
    )
    .await
    .map_err(InsertError::Api)
}

/// Field errors of the checkout input.
fn check(order: &mut Order) -> Result<(), CheckoutError> {
    let mut errors = Vec::new();
    match mercato_kernel::email::Email::parse(&order.email, "email") {
        Ok(email) => order.email = email.into_string(),
        Err(e) => errors.push(e),
    }
    order
        .shipping_address
        .check("shipping_address", &mut errors);
    if let Some(billing) = &mut order.billing_address {
        billing.check("billing_address", &mut errors);
    }
    match &order.payment_method {
        PaymentMethod::Token(token) => {
            if mercato_kernel::id::parse_id("tok", token, "payment_method.token").is_err() {
                errors.push(FieldError::new(
                    "payment_method.token",
                    "invalid_id",
                    "expected an id starting with `tok_`",
                ));
            }
        }
        PaymentMethod::Card(card) => {
            if card.get("card").and_then(Value::as_object).is_none() {
                errors.push(FieldError::new(
                    "payment_method.card",
                    "required",
                    "a card object is required",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CheckoutError::Refused(ApiError::validation(errors)))
    }
}
