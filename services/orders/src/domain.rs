//! Orders' rules without HTTP or SQL: the order lifecycle, the checkout saga's steps, what a
//! valid address is, and how shipping and tax are added to a catalog quote.

use serde::{Deserialize, Serialize};

pub use mercato_kernel::address::{Address, is_country};

/// Most units of one SKU in a cart (the catalog prices at most 10 000).
pub const MAX_QUANTITY: i64 = 10_000;
/// Most distinct SKUs in a cart.
pub const MAX_ITEMS: usize = 100;
/// Largest order total, in minor units (what payments accepts).
pub const MAX_TOTAL: i64 = 1_000_000_000_000;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
// The gateway merges every service's schemas by name: payments has a `Status` too.
#[schema(as = OrderStatus)]
pub enum Status {
    /// Checkout is running: stock being reserved, payment being taken.
    Pending,
    /// Paid; stock committed.
    Paid,
    /// The payment waits for a staff review.
    OnHold,
    /// Shipped, with carrier and tracking number.
    Fulfilled,
    /// Delivered to the buyer.
    Delivered,
    /// Cancelled before it shipped; any money taken is refunded.
    Cancelled,
    /// Every captured unit of money went back.
    Refunded,
    /// Some of the money went back.
    PartiallyRefunded,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 8] = [
        Self::Pending,
        Self::Paid,
        Self::OnHold,
        Self::Fulfilled,
        Self::Delivered,
        Self::Cancelled,
        Self::Refunded,
        Self::PartiallyRefunded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::OnHold => "on_hold",
            Self::Fulfilled => "fulfilled",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
            Self::PartiallyRefunded => "partially_refunded",
        }
    }

    /// The status of this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether an order may go from `self` to `to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Pending, Paid | Cancelled | OnHold)
                | (OnHold, Paid | Cancelled)
                | (Paid, Fulfilled | Cancelled | Refunded | PartiallyRefunded)
                | (
                    PartiallyRefunded,
                    Fulfilled | Cancelled | Refunded | PartiallyRefunded
                )
                | (Fulfilled, Delivered | Refunded | PartiallyRefunded)
                | (Delivered, Refunded | PartiallyRefunded)
        )
    }

    /// Whether money was taken and may be refunded.
    pub fn is_refundable(self) -> bool {
        matches!(
            self,
            Self::Paid | Self::Fulfilled | Self::Delivered | Self::PartiallyRefunded
        )
    }
}

/// Steps of the checkout saga, each persisted before the next call is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The order exists (`pending`); nothing reserved or charged yet.
    Created,
    /// Inventory holds every line.
    Reserved,
    /// A payment intent exists for the order's total.
    PaymentCreated,
    /// The payment succeeded; the reservation still has to be committed.
    Charged,
    /// The payment waits for a staff review (`on_hold`).
    Review,
    /// Undoing: release the stock, cancel or refund the payment, then `cancelled`.
    Compensating,
    /// Finished: `paid` or `cancelled`.
    Done,
}

impl Step {
    /// Every step.
    pub const ALL: [Step; 7] = [
        Self::Created,
        Self::Reserved,
        Self::PaymentCreated,
        Self::Charged,
        Self::Review,
        Self::Compensating,
        Self::Done,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Reserved => "reserved",
            Self::PaymentCreated => "payment_created",
            Self::Charged => "charged",
            Self::Review => "review",
            Self::Compensating => "compensating",
            Self::Done => "done",
        }
    }

    /// The step of this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A shipping rate as the totals see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingRate {
    /// `shr_…`.
    pub id: String,
    /// Shown to the buyer.
    pub name: String,
    /// Countries served; empty: all.
    pub countries: Vec<String>,
    /// Price of the rate.
    pub amount: i64,
    /// Lightest parcel it takes.
    pub min_weight_grams: i64,
    /// Parcels must weigh less than this, when set.
    pub max_weight_grams: Option<i64>,
    /// Free from this discounted subtotal on, when set.
    pub free_over: Option<i64>,
}

impl ShippingRate {
    fn serves(&self, country: &str, weight: i64) -> bool {
        (self.countries.is_empty() || self.countries.iter().any(|c| c == country))
            && weight >= self.min_weight_grams
            && self.max_weight_grams.is_none_or(|max| weight < max)
    }

    fn price(&self, merchandise: i64) -> i64 {
        match self.free_over {
            Some(threshold) if merchandise >= threshold => 0,
            _ => self.amount,
        }
    }
}

/// A tax rate as the totals see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRate {
    /// `txr_…`.
    pub id: String,
    /// Shown to the buyer, e.g. `VAT`.
    pub name: String,
    /// Country.
    pub country: String,
    /// Region, empty for the whole country.
    pub region: String,
    /// Basis points.
    pub rate_bps: i64,
    /// Whether prices include it.
    pub inclusive: bool,
    /// Whether shipping is taxed.
    pub applies_to_shipping: bool,
}

/// One priced line of a catalog quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotedLine {
    /// SKU.
    pub sku: String,
    /// Product title.
    pub title: String,
    /// Weight of one unit.
    pub weight_grams: Option<i64>,
    /// Units.
    pub quantity: i64,
    /// Price of one unit.
    pub unit_price: i64,
    /// `unit_price × quantity`.
    pub subtotal: i64,
    /// Promotions' part of this line.
    pub discount_total: i64,
    /// `subtotal − discount_total`.
    pub total: i64,
    /// The catalog's explanation of each discount.
    pub discounts: serde_json::Value,
}

/// Where tax went on one line or on shipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaxLine {
    /// The rate's name.
    pub name: String,
    /// Basis points.
    pub rate_bps: i64,
    /// Whether the taxed amount already includes it.
    pub inclusive: bool,
    /// The amount it was computed on.
    pub taxable: i64,
    /// The tax.
    pub amount: i64,
}

/// A line with its tax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalLine {
    /// The priced line.
    pub quoted: QuotedLine,
    /// Its tax, when a rate applies.
    pub tax: Option<TaxLine>,
}

/// The shipping picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShippingLine {
    /// `shr_…`, absent when no rate is configured (free shipping).
    pub rate_id: Option<String>,
    /// The rate's name.
    pub name: String,
    /// Parcel weight.
    pub weight_grams: i64,
    /// What shipping costs (before exclusive tax).
    pub amount: i64,
    /// Why it costs that.
    pub reason: String,
    /// Tax on shipping.
    pub tax: Option<TaxLine>,
}

/// A cart's or order's money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Lines with their tax.
    pub lines: Vec<TotalLine>,
    /// Σ line subtotals.
    pub subtotal: i64,
    /// Σ discounts.
    pub discount_total: i64,
    /// Shipping, when a destination is known.
    pub shipping: Option<ShippingLine>,
    /// Σ tax (included in prices or added).
    pub tax_total: i64,
    /// What the buyer pays.
    pub total: i64,
}

/// Why totals cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotalsError {
    /// Rates exist in this currency but none ships to the country at this weight.
    #[error("no shipping rate serves {country} for a parcel of {weight_grams} g")]
    Unshippable {
        /// Destination.
        country: String,
        /// Parcel weight.
        weight_grams: i64,
    },
    /// The total is above what can be paid at once.
    #[error("the order total is too large")]
    TooLarge,
}

/// `value × num / den`, rounded half up; `None` on overflow.
fn mul_div_round(value: i64, num: i64, den: i64) -> Option<i64> {
    if den <= 0 {
        return None;
    }
    let product = i128::from(value).checked_mul(i128::from(num))?;
    let den = i128::from(den);
    i64::try_from((product * 2 + den) / (den * 2)).ok()
}

fn tax_on(rate: &TaxRate, amount: i64) -> Option<TaxLine> {
    let tax = if rate.inclusive {
        // The tax inside a gross price: gross × r / (1 + r).
        mul_div_round(amount, rate.rate_bps, 10_000 + rate.rate_bps)?
    } else {
        mul_div_round(amount, rate.rate_bps, 10_000)?
    };
    Some(TaxLine {
        name: rate.name.clone(),
        rate_bps: rate.rate_bps,
        inclusive: rate.inclusive,
        taxable: amount,
        amount: tax,
    })
}

/// The tax rate for a destination: the region's, else the country's.
pub fn pick_tax_rate<'a>(
    rates: &'a [TaxRate],
    country: &str,
    region: Option<&str>,
) -> Option<&'a TaxRate> {
    let region = region.unwrap_or_default();
    rates
        .iter()
        .find(|r| r.country == country && !region.is_empty() && r.region == region)
        .or_else(|| {
            rates
                .iter()
                .find(|r| r.country == country && r.region.is_empty())
        })
}

/// Adds shipping and tax to a quote. `destination` is `(country, region)`; without one the
/// totals have no shipping and no tax yet. `shipping_rates` are the active rates of the
/// quote's currency: none at all means shipping is free; some, but none serving the
/// destination, is [`TotalsError::Unshippable`].
pub fn totals(
    quoted: Vec<QuotedLine>,
    destination: Option<(&str, Option<&str>)>,
    shipping_rates: &[ShippingRate],
    tax_rates: &[TaxRate],
) -> Result<Totals, TotalsError> {
    let sum = |f: fn(&QuotedLine) -> i64| -> Result<i64, TotalsError> {
        quoted
            .iter()
            .try_fold(0i64, |acc, l| acc.checked_add(f(l)))
            .ok_or(TotalsError::TooLarge)
    };
    let subtotal = sum(|l| l.subtotal)?;
    let discount_total = sum(|l| l.discount_total)?;
    let merchandise = sum(|l| l.total)?;
    let Some((country, region)) = destination else {
        let lines = quoted
            .into_iter()
            .map(|quoted| TotalLine { quoted, tax: None })
            .collect();
        return Ok(Totals {
            lines,
            subtotal,
            discount_total,
            shipping: None,
            tax_total: 0,
            total: merchandise,
        });
    };
    let weight = quoted
        .iter()
        .try_fold(0i64, |acc, l| {
            acc.checked_add(l.weight_grams.unwrap_or(0).checked_mul(l.quantity)?)
        })
        .ok_or(TotalsError::TooLarge)?;
    let rate = pick_tax_rate(tax_rates, country, region);
    let mut shipping = if shipping_rates.is_empty() {
        ShippingLine {
            rate_id: None,
            name: "Free shipping".to_owned(),
            weight_grams: weight,
            amount: 0,
            reason: "no shipping rate is configured".to_owned(),
            tax: None,
        }
    } else {
        let best = shipping_rates
            .iter()
            .filter(|r| r.serves(country, weight))
            .min_by_key(|r| (r.price(merchandise), r.id.clone()))
            .ok_or_else(|| TotalsError::Unshippable {
                country: country.to_owned(),
                weight_grams: weight,
            })?;
        let amount = best.price(merchandise);
        let reason = match best.free_over {
            Some(threshold) if amount == 0 => {
                format!("free from a subtotal of {threshold}: this one is {merchandise}")
            }
            _ => format!(
                "cheapest rate to {country} for {weight} g ({}{})",
                best.min_weight_grams,
                best.max_weight_grams
                    .map(|m| format!(" to {m} g"))
                    .unwrap_or_else(|| " g and up".to_owned())
            ),
        };
        ShippingLine {
            rate_id: Some(best.id.clone()),
            name: best.name.clone(),
            weight_grams: weight,
            amount,
            reason,
            tax: None,
        }
    };
    let mut tax_total = 0i64;
    let mut lines = Vec::with_capacity(quoted.len());
    for line in quoted {
        let tax = match rate {
            Some(rate) => Some(tax_on(rate, line.total).ok_or(TotalsError::TooLarge)?),
            None => None,
        };
        tax_total = tax_total
            .checked_add(tax.as_ref().map_or(0, |t| t.amount))
            .ok_or(TotalsError::TooLarge)?;
        lines.push(TotalLine { quoted: line, tax });
    }
    if let Some(rate) = rate.filter(|r| r.applies_to_shipping && shipping.amount > 0) {
        let tax = tax_on(rate, shipping.amount).ok_or(TotalsError::TooLarge)?;
        tax_total = tax_total
            .checked_add(tax.amount)
            .ok_or(TotalsError::TooLarge)?;
        shipping.tax = Some(tax);
    }
    let added_tax = if rate.is_some_and(|r| r.inclusive) {
        0
    } else {
        tax_total
    };
    let total = merchandise
        .checked_add(shipping.amount)
        .and_then(|t| t.checked_add(added_tax))
        .filter(|t| *t <= MAX_TOTAL)
        .ok_or(TotalsError::TooLarge)?;
    Ok(Totals {
        lines,
        subtotal,
        discount_total,
        shipping: Some(shipping),
        tax_total,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i64, unit: i64, discount: i64, weight: i64) -> QuotedLine {
        QuotedLine {
            sku: sku.into(),
            title: sku.into(),
            weight_grams: Some(weight),
            quantity,
            unit_price: unit,
            subtotal: unit * quantity,
            discount_total: discount,
            total: unit * quantity - discount,
            discounts: serde_json::Value::Array(vec![]),
        }
    }

    fn rate(id: &str, countries: &[&str], amount: i64, min: i64, max: Option<i64>) -> ShippingRate {
        ShippingRate {
            id: id.into(),
            name: id.into(),
            countries: countries.iter().map(|c| c.to_string()).collect(),
            amount,
            min_weight_grams: min,
            max_weight_grams: max,
            free_over: None,
        }
    }

    fn vat(country: &str, region: &str, bps: i64, inclusive: bool) -> TaxRate {
        TaxRate {
            id: format!("txr_{country}{region}"),
            name: "VAT".into(),
            country: country.into(),
            region: region.into(),
            rate_bps: bps,
            inclusive,
            applies_to_shipping: true,
        }
    }

    #[test]
    fn exclusive_tax_is_added_and_the_cheapest_weight_band_ships() {
        let rates = [
            rate("light", &["DE"], 490, 0, Some(1000)),
            rate("heavy", &["DE"], 990, 1000, None),
            rate("world", &[], 2500, 0, None),
        ];
        let t = totals(
            vec![line("a", 2, 1000, 200, 300), line("b", 1, 500, 0, 500)],
            Some(("DE", None)),
            &rates,
            &[vat("DE", "", 1900, false)],
        )
        .unwrap();
        assert_eq!((t.subtotal, t.discount_total), (2500, 200));
        let shipping = t.shipping.unwrap();
        assert_eq!(
            (shipping.name.as_str(), shipping.weight_grams),
            ("heavy", 1100)
        );
        // 1800 × 19 % = 342, 500 × 19 % = 95, 990 × 19 % = 188.1 → 188.
        assert_eq!(t.lines[0].tax.as_ref().unwrap().amount, 342);
        assert_eq!(t.tax_total, 342 + 95 + 188);
        assert_eq!(t.total, 2300 + 990 + 625);
    }

    #[test]
    fn inclusive_tax_is_shown_but_not_added_and_a_region_beats_its_country() {
        let t = totals(
            vec![line("a", 1, 1190, 0, 0)],
            Some(("CA", Some("QC"))),
            &[],
            &[vat("CA", "", 500, true), vat("CA", "QC", 1900, true)],
        )
        .unwrap();
        assert_eq!(t.tax_total, 190);
        assert_eq!(t.total, 1190, "free shipping without rates, tax included");
    }

    #[test]
    fn free_over_and_unshippable_destinations() {
        let mut r = rate("std", &["FR"], 500, 0, None);
        r.free_over = Some(5000);
        let t = totals(
            vec![line("a", 5, 1000, 0, 10)],
            Some(("FR", None)),
            &[r.clone()],
            &[],
        )
        .unwrap();
        assert_eq!(t.shipping.unwrap().amount, 0);
        assert_eq!(t.total, 5000);
        let err = totals(
            vec![line("a", 1, 100, 0, 10)],
            Some(("US", None)),
            &[r],
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, TotalsError::Unshippable { .. }));
    }

    #[test]
    fn without_a_destination_there_is_no_shipping_or_tax_and_overflow_is_an_error() {
        let t = totals(vec![line("a", 3, 100, 0, 0)], None, &[], &[]).unwrap();
        assert_eq!((t.total, t.tax_total, t.shipping), (300, 0, None));
        let huge = line("a", 1, MAX_TOTAL, 0, 0);
        let mut big = huge.clone();
        big.sku = "b".into();
        assert_eq!(
            totals(vec![huge, big], Some(("DE", None)), &[], &[]),
            Err(TotalsError::TooLarge)
        );
    }

    #[test]
    fn lifecycle_allows_only_forward_moves() {
        use Status::*;
        assert!(Pending.can_become(Paid) && Paid.can_become(Fulfilled));
        assert!(Fulfilled.can_become(Delivered) && Delivered.can_become(Refunded));
        assert!(
            !Fulfilled.can_become(Cancelled),
            "shipped orders are refunded, not cancelled"
        );
        assert!(!Cancelled.can_become(Paid) && !Refunded.can_become(Paid));
        assert!(!Pending.can_become(Fulfilled));
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for s in Step::ALL {
            assert_eq!(Step::parse(s.as_str()), Some(s));
        }
    }
}
