//! Price quotes: pure functions from a cart and the candidate promotions to a quote.
//!
//! All arithmetic is in integer minor units (`i64`, with `i128` for products); there is no
//! floating point. A promotion's discount is computed once on the sum of the lines it
//! matches (percentages round half away from zero, fixed amounts are capped at that sum) and
//! then split across those lines in proportion to their amounts with the largest-remainder
//! method, so the per-line discounts always add up exactly to the promotion's discount and
//! no line ever goes below zero.
//!
//! Stacking rule: the customer gets the better of (a) every applicable stackable promotion
//! together, or (b) the single best applicable non-stackable promotion alone. Ties go to (a),
//! then to the earliest-created promotion. Stackable promotions apply one after the other on
//! what is left of each line: percentages first, then fixed amounts, each group by id.

use mercato_kernel::money::{Currency, Money, MoneyError};

use super::promotion::{Discount, Promotion, Target};

mod quote;
pub use quote::{
    AppliedPromotion, LineDiscount, LineQuote, Quote, RejectReason, RejectedPromotion,
};

/// One line of the cart, with what the quote needs to know about its product.
#[derive(Debug, Clone)]
pub struct CartLine {
    /// The variant's SKU.
    pub sku: String,
    /// The variant's product.
    pub product_id: String,
    /// The product's categories and all their ancestors.
    pub category_ids: Vec<String>,
    /// Price of one unit in the quote's currency.
    pub unit_price: Money,
    /// Units, 1..=10 000.
    pub quantity: i64,
    /// The product's title, for the buyer.
    pub title: String,
    /// Weight of one unit, for shipping rates.
    pub weight_grams: Option<i64>,
}

/// How often a promotion has been redeemed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// By everyone.
    pub total: i64,
    /// By the quoting customer; `None` when the quote names no customer.
    pub customer: Option<i64>,
}

/// A promotion that may apply, with its redemption counts.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The promotion.
    pub promotion: Promotion,
    /// Its redemptions so far.
    pub usage: Usage,
}

/// What the quote is asked, beside the lines.
#[derive(Debug, Clone)]
pub struct QuoteRequest {
    /// Currency of the quote.
    pub currency: Currency,
    /// Normalized coupon code, if one was given.
    pub coupon: Option<String>,
    /// The current time, epoch µs.
    pub now: i64,
}

/// Splits `total` across `weights` in proportion, by the largest-remainder method: the parts
/// add up to `total` exactly, and with `0 <= total <= sum(weights)` no part exceeds its weight.
/// Remainder ties go to the earlier weight.
pub fn allocate(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if sum <= 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<(i128, i128)> = weights
        .iter()
        .map(|w| {
            let p = i128::from(total) * i128::from(*w);
            (p / sum, p % sum)
        })
        .collect();
    let mut parts: Vec<i128> = exact.iter().map(|(q, _)| *q).collect();
    let mut left = i128::from(total) - parts.iter().sum::<i128>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| exact[*b].1.cmp(&exact[*a].1).then(a.cmp(b)));
    for i in order {
        if left <= 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    // Each part is at most `total`, which is an i64.
    parts
        .into_iter()
        .map(|p| i64::try_from(p).unwrap_or(0))
        .collect()
}

/// Whether a promotion's target covers a line.
pub fn targets(target: &Target, line: &CartLine) -> bool {
    match target {
        Target::All => true,
        Target::Products(ids) => ids.contains(&line.product_id),
        Target::Categories(ids) => line.category_ids.iter().any(|c| ids.contains(c)),
    }
}

/// A human description of what a promotion does.
pub fn describe(promotion: &Promotion, currency: Currency) -> String {
    let spec = &promotion.spec;
    let amount = match &spec.discount {
        Discount::Percentage(bp) => format!("{}.{:02}% off", bp / 100, bp % 100),
        Discount::FixedAmount(list) => match list.iter().find(|m| m.currency == currency) {
            Some(m) => format!("{m} off"),
            None => "a fixed amount off".to_owned(),
        },
    };
    let on = match spec.target {
        Target::All => "the order",
        Target::Categories(_) => "products in the targeted categories",
        Target::Products(_) => "the targeted products",
    };
    match &spec.coupon_code {
        Some(code) => format!("{amount} {on} with coupon {code}"),
        None => format!("{amount} {on}"),
    }
}

/// Checks whether a candidate applies to the cart; gives the matching line indexes.
fn eligibility(
    c: &Candidate,
    lines: &[CartLine],
    subtotal: Money,
    req: &QuoteRequest,
) -> Result<Vec<usize>, RejectReason> {
    let spec = &c.promotion.spec;
    let matching: Vec<usize> = (0..lines.len())
        .filter(|i| targets(&spec.target, &lines[*i]))
        .collect();
    if spec.starts_at.is_some_and(|s| req.now < s) {
        return Err(RejectReason::NotStarted);
    }
    if spec.ends_at.is_some_and(|e| req.now >= e) {
        return Err(RejectReason::Expired);
    }
    if spec.usage_limit.is_some_and(|l| c.usage.total >= l) {
        return Err(RejectReason::UsageLimitReached);
    }
    if let (Some(limit), Some(used)) = (spec.usage_limit_per_customer, c.usage.customer)
        && used >= limit
    {
        return Err(RejectReason::CustomerUsageLimitReached);
    }
    let fixed_missing = matches!(&spec.discount, Discount::FixedAmount(list)
        if !list.iter().any(|m| m.currency == req.currency));
    if fixed_missing
        || spec
            .minimum_subtotal
            .is_some_and(|m| m.currency != req.currency)
    {
        return Err(RejectReason::CurrencyNotSupported);
    }
    if matching.is_empty() {
        return Err(RejectReason::NoMatchingLines);
    }
    if spec
        .minimum_subtotal
        .is_some_and(|m| subtotal.amount < m.amount)
    {
        return Err(RejectReason::MinimumSubtotalNotMet);
    }
    Ok(matching)
}

/// One promotion's discount split over lines: `(line index, amount)`.
type Split = Vec<(usize, i64)>;

/// Applies promotions one after the other on `remaining`; gives each one's split.
fn apply_in_turn(
    chosen: &[(&Candidate, Vec<usize>)],
    remaining: &mut [i64],
    currency: Currency,
) -> Result<Vec<Split>, MoneyError> {
    let mut splits = Vec::with_capacity(chosen.len());
    for (c, matching) in chosen {
        let weights: Vec<i64> = matching.iter().map(|i| remaining[*i]).collect();
        let base = Money::sum(currency, weights.iter().map(|w| Money::new(*w, currency)))?;
        let discount = match &c.promotion.spec.discount {
            Discount::Percentage(bp) => base.percent_bp(*bp)?.amount,
            Discount::FixedAmount(list) => list
                .iter()
                .find(|m| m.currency == currency)
                .map_or(0, |m| m.amount),
        }
        .clamp(0, base.amount);
        let parts = allocate(discount, &weights);
        for (i, part) in matching.iter().zip(&parts) {
            remaining[*i] -= part;
        }
        splits.push(matching.iter().copied().zip(parts).collect());
    }
    Ok(splits)
}

fn split_total(split: &Split) -> i64 {
    split.iter().map(|(_, a)| a).sum()
}

/// Prices the cart: subtotals, the best combination of applicable promotions (see the module
/// documentation), per-line discounts and totals, and why every other promotion was refused.
pub fn quote(
    lines: &[CartLine],
    candidates: &[Candidate],
    req: &QuoteRequest,
) -> Result<Quote, MoneyError> {
    let currency = req.currency;
    let subtotals = lines
        .iter()
        .map(|l| l.unit_price.checked_mul(l.quantity))
        .collect::<Result<Vec<_>, _>>()?;
    let subtotal = Money::sum(currency, subtotals.iter().copied())?;
    let mut rejected = Vec::new();
    let coupon_known = candidates.iter().any(|c| {
        c.promotion.spec.coupon_code.is_some() && c.promotion.spec.coupon_code == req.coupon
    });
    if let (Some(code), false) = (&req.coupon, coupon_known) {
        rejected.push(RejectedPromotion {
            promotion_id: None,
            name: None,
            coupon_code: Some(code.clone()),
            reason: RejectReason::CouponUnknown,
            detail: format!("no active promotion has the coupon code {code}"),
        });
    }
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| a.promotion.id.cmp(&b.promotion.id));
    let mut eligible = Vec::new();
    for c in sorted {
        match eligibility(c, lines, subtotal, req) {
            Ok(matching) => eligible.push((c, matching)),
            // An automatic promotion for other products is not worth reporting.
            Err(RejectReason::NoMatchingLines) if c.promotion.spec.coupon_code.is_none() => {}
            Err(reason) => rejected.push(reject(c, reason, None)),
        }
    }
    let base: Vec<i64> = subtotals.iter().map(|m| m.amount).collect();
    let (winners, splits) = choose(eligible, &base, currency, &mut rejected)?;
    build(lines, &subtotals, req, &winners, &splits, rejected)
}

/// Picks the stacked set or the best single non-stackable promotion; rejects the others.
#[allow(clippy::type_complexity)]
fn choose<'a>(
    eligible: Vec<(&'a Candidate, Vec<usize>)>,
    base: &[i64],
    currency: Currency,
    rejected: &mut Vec<RejectedPromotion>,
) -> Result<(Vec<&'a Candidate>, Vec<Split>), MoneyError> {
    let (mut stack, single): (Vec<_>, Vec<_>) = eligible
        .into_iter()
        .partition(|(c, _)| c.promotion.spec.stackable);
    stack.sort_by_key(|(c, _)| matches!(c.promotion.spec.discount, Discount::FixedAmount(_)));
    let mut options: Vec<Vec<(&Candidate, Vec<usize>)>> = vec![stack];
    options.extend(single.into_iter().map(|one| vec![one]));
    let mut best: Option<(usize, Vec<Split>, i64)> = None;
    for (n, option) in options.iter().enumerate() {
        let splits = apply_in_turn(option, &mut base.to_vec(), currency)?;
        let total: i64 = splits.iter().map(split_total).sum();
        if best.as_ref().is_none_or(|(_, _, t)| total > *t) {
            best = Some((n, splits, total));
        }
    }
    let Some((won, splits, _)) = best else {
        return Ok((Vec::new(), Vec::new()));
    };
    let winner_name = options[won]
        .first()
        .map(|(c, _)| c.promotion.spec.name.clone());
    let mut winners = Vec::new();
    let mut kept = Vec::new();
    for (n, option) in options.into_iter().enumerate() {
        for (k, (c, _)) in option.into_iter().enumerate() {
            if n != won {
                rejected.push(reject(
                    c,
                    RejectReason::NotStackable,
                    winner_name.as_deref(),
                ));
            } else if split_total(&splits[k]) == 0 {
                rejected.push(reject(c, RejectReason::NoDiscount, None));
            } else {
                winners.push(c);
                kept.push(splits[k].clone());
            }
        }
    }
    Ok((winners, kept))
}

fn reject(c: &Candidate, reason: RejectReason, winner: Option<&str>) -> RejectedPromotion {
    let spec = &c.promotion.spec;
    let detail = match reason {
        RejectReason::NotStarted => "the promotion has not started yet".to_owned(),
        RejectReason::Expired => "the promotion has ended".to_owned(),
        RejectReason::UsageLimitReached => "the promotion's usage limit is reached".to_owned(),
        RejectReason::CustomerUsageLimitReached => {
            "the customer has used this promotion as often as allowed".to_owned()
        }
        RejectReason::CurrencyNotSupported => "not available in this currency".to_owned(),
        RejectReason::NoMatchingLines => "no line of the cart is eligible".to_owned(),
        RejectReason::MinimumSubtotalNotMet => match spec.minimum_subtotal {
            Some(m) => format!("the cart subtotal is below the minimum of {m}"),
            None => "the cart subtotal is below the minimum".to_owned(),
        },
        RejectReason::NoDiscount => "the discount rounds to zero".to_owned(),
        RejectReason::NotStackable => format!(
            "cannot be combined with {}, which gives a larger discount",
            winner.unwrap_or("the applied promotions")
        ),
        RejectReason::CouponUnknown => "unknown coupon".to_owned(),
    };
    RejectedPromotion {
        promotion_id: Some(c.promotion.id.clone()),
        name: Some(spec.name.clone()),
        coupon_code: spec.coupon_code.clone(),
        reason,
        detail,
    }
}

fn build(
    lines: &[CartLine],
    subtotals: &[Money],
    req: &QuoteRequest,
    winners: &[&Candidate],
    splits: &[Split],
    rejected_promotions: Vec<RejectedPromotion>,
) -> Result<Quote, MoneyError> {
    let currency = req.currency;
    let mut line_discounts: Vec<Vec<LineDiscount>> = vec![Vec::new(); lines.len()];
    let mut applied_promotions = Vec::new();
    for (c, split) in winners.iter().zip(splits) {
        let reason = describe(&c.promotion, currency);
        for (i, amount) in split.iter().filter(|(_, a)| *a > 0) {
            line_discounts[*i].push(LineDiscount {
                promotion_id: c.promotion.id.clone(),
                name: c.promotion.spec.name.clone(),
                amount: Money::new(*amount, currency),
                reason: reason.clone(),
            });
        }
        applied_promotions.push(AppliedPromotion {
            promotion_id: c.promotion.id.clone(),
            name: c.promotion.spec.name.clone(),
            coupon_code: c.promotion.spec.coupon_code.clone(),
            amount: Money::new(split_total(split), currency),
            reason,
        });
    }
    let mut quoted = Vec::with_capacity(lines.len());
    for ((line, subtotal), discounts) in lines.iter().zip(subtotals).zip(line_discounts) {
        let discount_total = Money::sum(currency, discounts.iter().map(|d| d.amount))?;
        quoted.push(LineQuote {
            sku: line.sku.clone(),
            title: line.title.clone(),
            weight_grams: line.weight_grams,
            quantity: line.quantity,
            unit_price: line.unit_price,
            subtotal: *subtotal,
            total: subtotal.checked_sub(discount_total)?,
            discounts,
            discount_total,
        });
    }
    let subtotal = Money::sum(currency, subtotals.iter().copied())?;
    let discount_total = Money::sum(currency, quoted.iter().map(|l| l.discount_total))?;
    Ok(Quote {
        currency,
        subtotal,
        total: subtotal.checked_sub(discount_total)?,
        discount_total,
        lines: quoted,
        applied_promotions,
        rejected_promotions,
    })
}

#[cfg(test)]
mod tests;
