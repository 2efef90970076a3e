//! What orders asks of catalog (prices), inventory (stock, reservations) and payments (cards,
//! intents, refunds), as typed calls over [`ServiceClient`]. Only the fields orders reads are
//! declared; the services' own documents have the rest.

use std::collections::BTreeMap;

use mercato_kernel::client::{CallError, ServiceClient, Services};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::QuotedLine;

/// This service's name as a caller.
const ME: &str = "orders";

/// The three services orders calls.
#[derive(Debug, Clone)]
pub struct Clients {
    catalog: ServiceClient,
    inventory: ServiceClient,
    payments: ServiceClient,
}

/// An amount as other services write it.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Amount {
    /// Minor units.
    pub amount: i64,
}

#[derive(Debug, Deserialize)]
struct QuoteLineWire {
    sku: String,
    #[serde(default)]
    title: String,
    weight_grams: Option<i64>,
    quantity: i64,
    unit_price: Amount,
    subtotal: Amount,
    discount_total: Amount,
    total: Amount,
    #[serde(default)]
    discounts: Value,
}

#[derive(Debug, Deserialize)]
struct QuoteWire {
    lines: Vec<QuoteLineWire>,
    #[serde(default)]
    applied_promotions: Vec<Value>,
    #[serde(default)]
    rejected_promotions: Vec<Value>,
}

/// A catalog price quote.
#[derive(Debug, Clone)]
pub struct Quote {
    /// Lines in the order asked.
    pub lines: Vec<QuotedLine>,
    /// Promotions applied (`promotion_id`, `name`, `amount`, `reason`, …).
    pub applied_promotions: Vec<Value>,
    /// Promotions not applied, with why.
    pub rejected_promotions: Vec<Value>,
}

/// Available units of a SKU.
#[derive(Debug, Clone, Deserialize)]
pub struct Stock {
    /// SKU.
    pub sku: String,
    /// Units that can be sold now.
    pub available: i64,
}

/// Where inventory holds a line's units.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Allocation {
    /// SKU.
    pub sku: String,
    /// `wh_…`.
    pub warehouse_id: String,
    /// Units.
    pub quantity: i64,
}

/// A stock reservation.
#[derive(Debug, Clone, Deserialize)]
pub struct Reservation {
    /// `res_…`.
    pub id: String,
    /// `active`, `committed`, `released` or `expired`.
    pub status: String,
    /// Where the units are.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
}

/// A payment intent.
#[derive(Debug, Clone, Deserialize)]
pub struct Payment {
    /// `pay_…`.
    pub id: String,
    /// Its status (`succeeded`, `failed`, `requires_review`, …).
    pub status: String,
    /// Money captured.
    #[serde(default)]
    pub amount_captured: i64,
    /// Money refunded.
    #[serde(default)]
    pub amount_refunded: i64,
}

/// A stored card.
#[derive(Debug, Clone, Deserialize)]
pub struct Card {
    /// `tok_…`.
    pub token: String,
    /// Who tokenized it.
    #[serde(default)]
    pub owner: String,
}

/// A refund made by payments.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentRefund {
    /// `re_…`.
    pub id: String,
    /// Minor units.
    pub amount: i64,
}

/// What a new payment intent is for.
#[derive(Debug)]
pub struct NewPayment<'a> {
    /// Minor units.
    pub amount: i64,
    /// ISO 4217.
    pub currency: &'a str,
    /// `tok_…`.
    pub token: &'a str,
    /// Buyer.
    pub email: &'a str,
    /// `order_id`, `order_number`, `customer_id`.
    pub metadata: BTreeMap<String, String>,
    /// Destination country.
    pub shipping_country: &'a str,
    /// Billing country.
    pub billing_country: &'a str,
}

impl Clients {
    /// Clients of the platform's services as `orders`.
    pub fn new(services: &Services) -> Self {
        Self {
            catalog: services.client(ME, "catalog"),
            inventory: services.client(ME, "inventory"),
            payments: services.client(ME, "payments"),
        }
    }

    /// Prices `lines` (SKU, units) in `currency` with an optional coupon.
    pub async fn quote(
        &self,
        currency: &str,
        lines: &[(String, i64)],
        coupon: Option<&str>,
        customer_id: Option<&str>,
    ) -> Result<Quote, CallError> {
        let body = json!({
            "currency": currency,
            "lines": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
            "coupon": coupon,
            "customer_id": customer_id,
        });
        let wire: QuoteWire = self
            .catalog
            .post("/api/v1/prices/quote", &body, None)
            .await?;
        Ok(Quote {
            lines: wire
                .lines
                .into_iter()
                .map(|l| QuotedLine {
                    sku: l.sku,
                    title: l.title,
                    weight_grams: l.weight_grams,
                    quantity: l.quantity,
                    unit_price: l.unit_price.amount,
                    subtotal: l.subtotal.amount,
                    discount_total: l.discount_total.amount,
                    total: l.total.amount,
                    discounts: l.discounts,
                })
                .collect(),
            applied_promotions: wire.applied_promotions,
            rejected_promotions: wire.rejected_promotions,
        })
    }

    /// Records that order `order_id` used promotion `promotion_id`.
    pub async fn redeem(
        &self,
        promotion_id: &str,
        order_id: &str,
        customer_id: Option<&str>,
    ) -> Result<(), CallError> {
        let body = json!({"order_id": order_id, "customer_id": customer_id});
        let key = format!("{order_id}:redeem:{promotion_id}");
        self.catalog
            .post::<_, Value>(
                &format!("/api/v1/promotions/{promotion_id}/redemptions"),
                &body,
                Some(&key),
            )
            .await
            .map(drop)
    }

    /// Available units of `skus` (unknown SKUs are left out).
    pub async fn stock(&self, skus: &[&str]) -> Result<Vec<Stock>, CallError> {
        self.inventory
            .get(&format!("/api/v1/stock?skus={}", skus.join(",")))
            .await
    }

    /// Holds every line for the order, all or nothing.
    pub async fn reserve(
        &self,
        order_id: &str,
        lines: &[(String, i64)],
        ttl_seconds: i64,
    ) -> Result<Reservation, CallError> {
        let body = json!({
            "reference": order_id,
            "lines": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
            "ttl_seconds": ttl_seconds,
        });
        let key = format!("{order_id}:reserve");
        self.inventory
            .post("/api/v1/reservations", &body, Some(&key))
            .await
    }

    /// The reservations made for an order.
    pub async fn reservations_for(&self, order_id: &str) -> Result<Vec<Reservation>, CallError> {
        self.inventory
            .get(&format!("/api/v1/reservations?reference={order_id}"))
            .await
    }

    /// Turns held units into sold ones.
    pub async fn commit(&self, reservation_id: &str) -> Result<Reservation, CallError> {
        self.inventory
            .post(
                &format!("/api/v1/reservations/{reservation_id}/commit"),
                &json!({}),
                None,
            )
            .await
    }

    /// Gives held units back.
    pub async fn release(&self, reservation_id: &str) -> Result<Reservation, CallError> {
        self.inventory
            .post(
                &format!("/api/v1/reservations/{reservation_id}/release"),
                &json!({}),
                None,
            )
            .await
    }

    /// Puts returned units back on hand in `warehouse_id`.
    pub async fn restock(
        &self,
        sku: &str,
        warehouse_id: &str,
        quantity: i64,
        reference: &str,
        key: &str,
    ) -> Result<(), CallError> {
        let body = json!({
            "sku": sku,
            "warehouse_id": warehouse_id,
            "delta": quantity,
            "reason": "return",
            "reference": reference,
        });
        self.inventory
            .post::<_, Value>("/api/v1/stock/adjustments", &body, Some(key))
            .await
            .map(drop)
    }

    /// Card `token`, with its owner.
    pub async fn card(&self, token: &str) -> Result<Card, CallError> {
        self.payments
            .get(&format!("/api/v1/payment-methods/{token}"))
            .await
    }

    /// Tokenizes a card (`{"type": "card", "card": {…}}`).
    pub async fn tokenize(&self, method: &Value) -> Result<Card, CallError> {
        self.payments
            .post("/api/v1/payment-methods", method, None)
            .await
    }

    /// Creates the order's payment intent (once per order: the key is the order's).
    pub async fn create_payment(
        &self,
        order_id: &str,
        p: &NewPayment<'_>,
    ) -> Result<Payment, CallError> {
        let body = json!({
            "amount": p.amount,
            "currency": p.currency,
            "payment_method": {"type": "token", "token": p.token},
            "customer_email": p.email,
            "metadata": p.metadata,
            "shipping_country": p.shipping_country,
            "billing_country": p.billing_country,
        });
        let key = format!("{order_id}:payment");
        self.payments
            .post("/api/v1/payments", &body, Some(&key))
            .await
    }

    /// Charges the intent (once per order).
    pub async fn process_payment(
        &self,
        order_id: &str,
        payment_id: &str,
    ) -> Result<Payment, CallError> {
        let key = format!("{order_id}:process");
        self.payments
            .post(
                &format!("/api/v1/payments/{payment_id}/process"),
                &json!({}),
                Some(&key),
            )
            .await
    }

    /// The intent as it is now.
    pub async fn payment(&self, payment_id: &str) -> Result<Payment, CallError> {
        self.payments
            .get(&format!("/api/v1/payments/{payment_id}"))
            .await
    }

    /// Cancels an intent no money moved on.
    pub async fn cancel_payment(
        &self,
        order_id: &str,
        payment_id: &str,
    ) -> Result<Payment, CallError> {
        let key = format!("{order_id}:cancel-payment");
        self.payments
            .post(
                &format!("/api/v1/payments/{payment_id}/cancel"),
                &json!({}),
                Some(&key),
            )
            .await
    }

    /// Refunds `amount` (everything left when `None`); `key` makes a retry refund once.
    pub async fn refund_payment(
        &self,
        payment_id: &str,
        amount: Option<i64>,
        reason: &str,
        key: &str,
    ) -> Result<PaymentRefund, CallError> {
        let body = json!({"amount": amount, "reason": reason});
        self.payments
            .post(
                &format!("/api/v1/payments/{payment_id}/refund"),
                &body,
                Some(key),
            )
            .await
    }
}
