//! What a price quote answers.

use mercato_kernel::money::{Currency, Money};
use serde::Serialize;

/// Why a promotion was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// No active promotion has this coupon code.
    CouponUnknown,
    /// Its start time is in the future.
    NotStarted,
    /// Its end time has passed.
    Expired,
    /// Its total usage limit is used up.
    UsageLimitReached,
    /// The customer has used it as often as allowed.
    CustomerUsageLimitReached,
    /// It has no amount (or minimum) in the quote's currency.
    CurrencyNotSupported,
    /// No line of the cart is targeted.
    NoMatchingLines,
    /// The cart subtotal is below its minimum.
    MinimumSubtotalNotMet,
    /// It would take nothing off (rounds to zero).
    NoDiscount,
    /// Another promotion it cannot be combined with gives a larger discount.
    NotStackable,
}

/// Part of a promotion's discount on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineDiscount {
    /// `promo_…`.
    pub promotion_id: String,
    /// Promotion name.
    pub name: String,
    /// Amount taken off this line.
    pub amount: Money,
    /// What the promotion does.
    pub reason: String,
}

/// One priced line.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LineQuote {
    /// The SKU asked for.
    pub sku: String,
    /// The product's title.
    pub title: String,
    /// Weight of one unit, when known.
    pub weight_grams: Option<i64>,
    /// Units.
    pub quantity: i64,
    /// Price of one unit.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub subtotal: Money,
    /// Discounts on this line.
    pub discounts: Vec<LineDiscount>,
    /// Sum of `discounts`.
    pub discount_total: Money,
    /// `subtotal − discount_total`, never negative.
    pub total: Money,
}

/// A promotion the quote applies.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AppliedPromotion {
    /// `promo_…`.
    pub promotion_id: String,
    /// Promotion name.
    pub name: String,
    /// Its coupon code, if it needs one.
    pub coupon_code: Option<String>,
    /// Total it takes off (the sum of its line discounts).
    pub amount: Money,
    /// What it does.
    pub reason: String,
}

/// A promotion the quote considered and did not apply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RejectedPromotion {
    /// `promo_…`; absent for an unknown coupon.
    pub promotion_id: Option<String>,
    /// Promotion name; absent for an unknown coupon.
    pub name: Option<String>,
    /// The coupon code involved, if any.
    pub coupon_code: Option<String>,
    /// Stable reason code.
    pub reason: RejectReason,
    /// Human explanation.
    pub detail: String,
}

/// A priced cart.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Quote {
    /// Currency of every amount.
    pub currency: Currency,
    /// Lines, in the order asked.
    pub lines: Vec<LineQuote>,
    /// Sum of line subtotals.
    pub subtotal: Money,
    /// Sum of every discount.
    pub discount_total: Money,
    /// `subtotal − discount_total`.
    pub total: Money,
    /// Promotions applied.
    pub applied_promotions: Vec<AppliedPromotion>,
    /// Promotions considered but not applied, with why.
    pub rejected_promotions: Vec<RejectedPromotion>,
}
