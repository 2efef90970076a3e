//! What crosses a service boundary: event subjects and the shapes services exchange.

/// Subjects of the events on the bus (DESIGN.md §4). An event's CloudEvents `type` is its subject.
pub mod subjects {
    /// A storefront asks orders to check a cart out.
    pub const COMMAND_CHECKOUT: &str = "command.checkout";
    /// An order was placed.
    pub const ORDER_CREATED: &str = "order.created";
    /// An order was paid.
    pub const ORDER_PAID: &str = "order.paid";
    /// An order was cancelled.
    pub const ORDER_CANCELLED: &str = "order.cancelled";
    /// An order was shipped or handed over.
    pub const ORDER_FULFILLED: &str = "order.fulfilled";
    /// An order reached its buyer.
    pub const ORDER_DELIVERED: &str = "order.delivered";
    /// Money of an order went back to the buyer.
    pub const ORDER_REFUNDED: &str = "order.refunded";
    /// Stock of a SKU changed.
    pub const STOCK_UPDATED: &str = "inventory.stock.updated";
    /// Stock of a SKU fell below its threshold.
    pub const STOCK_LOW: &str = "inventory.stock.low";
    /// A payment succeeded.
    pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
    /// A payment failed.
    pub const PAYMENT_FAILED: &str = "payment.failed";
    /// A payment was refunded.
    pub const PAYMENT_REFUNDED: &str = "payment.refunded";
    /// Risk checks hold a payment for a staff decision.
    pub const PAYMENT_REVIEW_REQUIRED: &str = "payment.review_required";
    /// An email to send.
    pub const NOTIFICATION_EMAIL: &str = "notification.email";
    /// An SMS to send.
    pub const NOTIFICATION_SMS: &str = "notification.sms";
    /// A push notification to send.
    pub const NOTIFICATION_PUSH: &str = "notification.push";
    /// An in-app notification to store.
    pub const NOTIFICATION_IN_APP: &str = "notification.in_app";
    /// A user signed up.
    pub const USER_REGISTERED: &str = "user.registered";
    /// A user asked to reset a forgotten password.
    pub const USER_PASSWORD_RESET_REQUESTED: &str = "user.password_reset_requested";
    /// An organization was created.
    pub const ORGANIZATION_CREATED: &str = "organization.created";
    /// A member joined an organization.
    pub const ORGANIZATION_MEMBER_ADDED: &str = "organization.member.added";
    /// An audit entry for the analytics trail.
    pub const ANALYTICS_AUDIT: &str = "analytics.audit";
    /// A tracked metric event.
    pub const ANALYTICS_METRIC: &str = "analytics.metric";
    /// An event a consumer gave up on.
    pub const ANALYTICS_DLQ: &str = "analytics.dlq";
    /// A product was created; data is the full product with variants and prices.
    pub const PRODUCT_CREATED: &str = "product.created";
    /// A product (or one of its variants, prices or stock) changed; data is the full product.
    pub const PRODUCT_UPDATED: &str = "product.updated";
    /// A product was archived (or a draft deleted); data is the product as it last was.
    pub const PRODUCT_ARCHIVED: &str = "product.archived";
}

/// Shapes of the events inventory publishes.
pub mod inventory {
    use serde::{Deserialize, Serialize};

    /// Data of `inventory.stock.updated`: the stock of one SKU after a change.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct StockUpdated {
        /// The variant's stock keeping unit.
        pub sku: String,
        /// Units that can be sold now (`on_hand - reserved`, never below 0).
        pub available: i64,
        /// Units physically in stock.
        pub on_hand: i64,
        /// Units held for unpaid or unshipped orders.
        pub reserved: i64,
    }

    /// Data of `inventory.stock.low`: the available units of a SKU fell to its threshold or
    /// below. Published once per crossing; rising above the threshold re-arms it.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct StockLow {
        /// The variant's stock keeping unit.
        pub sku: String,
        /// Units that can be sold now.
        pub available: i64,
        /// The threshold that was crossed.
        pub threshold: i64,
    }
}

/// What other services read of the `order.*` events.
pub mod orders {
    use serde::{Deserialize, Serialize};

    /// The part of every `order.*` event's data that names the order. Inventory reservations
    /// made for an order carry the order's id as their `reference`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderRef {
        /// `ord_…`.
        pub id: String,
    }

    /// Data of every `order.*` event: the order after the change.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderEvent {
        /// `ord_…`.
        pub id: String,
        /// The number the buyer sees, e.g. `1042`.
        pub number: String,
        /// The order's status after the change.
        pub status: String,
        /// The buyer's account, absent for a guest.
        pub customer_id: Option<String>,
        /// The buyer's email.
        pub email: String,
        /// ISO 4217.
        pub currency: String,
        /// What the buyer paid, minor units.
        pub total: i64,
        /// Refunded so far, minor units.
        pub amount_refunded: i64,
        /// What was bought.
        pub lines: Vec<OrderEventLine>,
        /// Why it was cancelled or refunded.
        pub reason: Option<String>,
        /// Carrier, once fulfilled.
        pub carrier: Option<String>,
        /// Tracking number, once fulfilled.
        pub tracking_number: Option<String>,
    }

    /// One line of an [`OrderEvent`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderEventLine {
        /// SKU.
        pub sku: String,
        /// Product title.
        pub title: String,
        /// Units.
        pub quantity: i64,
        /// Price of one unit.
        pub unit_price: i64,
        /// What the line costs after discounts.
        pub total: i64,
    }

    /// Data of `command.checkout`: place an order for a cart. The card must already be a
    /// token of the buyer's (`tok_…`): raw card numbers never travel on the bus.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct CheckoutCommand {
        /// `cart_…`.
        pub cart_id: String,
        /// The buyer's account, absent for a guest.
        pub customer_id: Option<String>,
        /// The buyer's email.
        pub email: String,
        /// As `POST /api/v1/checkout` takes it.
        pub shipping_address: serde_json::Value,
        /// As `POST /api/v1/checkout` takes it.
        pub billing_address: Option<serde_json::Value>,
        /// `tok_…`.
        pub payment_token: String,
        /// Makes a redelivered or repeated command place one order; the event id when absent.
        pub idempotency_key: Option<String>,
    }
}

/// Shapes of the events payments publishes.
pub mod payments {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    /// Data of every `payment.*` event: the payment as it is after the change.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PaymentSummary {
        /// `pay_…`.
        pub id: String,
        /// Minor units.
        pub amount: i64,
        /// ISO 4217.
        pub currency: String,
        /// The intent's status.
        pub status: String,
        /// Money captured.
        pub amount_captured: i64,
        /// Money refunded.
        pub amount_refunded: i64,
        /// `test`, `stripe`, …
        pub provider: String,
        /// Why it failed, for `payment.failed`.
        pub failure_code: Option<String>,
        /// What the creator attached (orders put `order_id` here).
        pub metadata: BTreeMap<String, String>,
    }
}

/// Stock keeping units, shared by catalog (variants) and inventory (stock).
pub mod sku {
    /// Why a SKU is refused, for field errors.
    pub const RULE: &str = "1 to 64 letters, digits, `-`, `_`, `.` or `/`";

    /// Whether `raw` is a well-formed SKU.
    pub fn is_valid(raw: &str) -> bool {
        (1..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    }
}
