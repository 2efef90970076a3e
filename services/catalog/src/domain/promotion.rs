//! Promotions: what they discount, on what, when, and how often.
//!
//! Percentages are integer basis points, 1 to 10 000 (`1500` = 15 %). Fixed amounts are a
//! list of `Money`, at most one per currency: the promotion applies only to quotes in one of
//! those currencies. Times are epoch microseconds inside, RFC 3339 on the wire.

use mercato_kernel::FieldError;
use mercato_kernel::money::{Currency, Money};
use mercato_kernel::time::rfc3339;
use serde::Deserialize;

/// Longest promotion name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most category or product ids a promotion may target.
pub const MAX_TARGET_IDS: usize = 1_000;
/// Most currencies a fixed amount may list.
pub const MAX_AMOUNTS: usize = 50;

/// How much a promotion takes off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discount {
    /// A share of the matching lines, in basis points (1..=10 000).
    Percentage(i64),
    /// An amount off the matching lines per currency (never more than they cost).
    FixedAmount(Vec<Money>),
}

/// Which lines a promotion applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every line.
    All,
    /// Products in these categories or any of their sub-categories.
    Categories(Vec<String>),
    /// These products.
    Products(Vec<String>),
}

impl Target {
    /// `all`, `categories` or `products`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Categories(_) => "categories",
            Self::Products(_) => "products",
        }
    }

    /// The targeted ids (empty for `all`).
    pub fn ids(&self) -> &[String] {
        match self {
            Self::All => &[],
            Self::Categories(ids) | Self::Products(ids) => ids,
        }
    }
}

/// A validated promotion, without its id and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionSpec {
    /// Display name.
    pub name: String,
    /// Amount off.
    pub discount: Discount,
    /// Lines it applies to.
    pub target: Target,
    /// Upper-case coupon code; `None` applies automatically.
    pub coupon_code: Option<String>,
    /// First instant it applies (epoch µs).
    pub starts_at: Option<i64>,
    /// First instant it no longer applies (epoch µs).
    pub ends_at: Option<i64>,
    /// Most redemptions in total.
    pub usage_limit: Option<i64>,
    /// Most redemptions per customer.
    pub usage_limit_per_customer: Option<i64>,
    /// Cart subtotal needed, in one currency.
    pub minimum_subtotal: Option<Money>,
    /// Whether it combines with other stackable promotions.
    pub stackable: bool,
    /// Whether it is in force at all.
    pub active: bool,
}

/// A stored promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// `promo_…`.
    pub id: String,
    /// Its rules.
    pub spec: PromotionSpec,
    /// Epoch µs.
    pub created_at: i64,
    /// Epoch µs.
    pub updated_at: i64,
}

/// Money as sent by a client, checked into [`Money`] with field errors.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct MoneyInput {
    /// Minor units.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl From<Money> for MoneyInput {
    fn from(m: Money) -> Self {
        Self {
            amount: m.amount,
            currency: m.currency.to_string(),
        }
    }
}

/// Promotion fields as sent by a client; every field optional so that a PATCH can be laid
/// over the stored promotion and the result checked as a whole.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromotionInput {
    /// 1 to 200 characters.
    pub name: Option<String>,
    /// `percentage` or `fixed_amount`.
    pub kind: Option<String>,
    /// For `percentage`: 1 to 10 000 basis points (`1500` = 15 %).
    pub basis_points: Option<i64>,
    /// For `fixed_amount`: the amount off per currency, each positive.
    pub amounts: Option<Vec<MoneyInput>>,
    /// `all`, `categories` (sub-categories included) or `products`.
    pub target: Option<String>,
    /// Category or product ids for those targets.
    pub target_ids: Option<Vec<String>>,
    /// Coupon code, 3 to 64 of `A-Z 0-9 - _` (case-insensitive); `null` removes it.
    #[serde(default, deserialize_with = "some")]
    pub coupon_code: Option<Option<String>>,
    /// RFC 3339; `null` removes it.
    #[serde(default, deserialize_with = "some")]
    pub starts_at: Option<Option<String>>,
    /// RFC 3339, after `starts_at`; `null` removes it.
    #[serde(default, deserialize_with = "some")]
    pub ends_at: Option<Option<String>>,
    /// At least 1; `null` removes it.
    #[serde(default, deserialize_with = "some")]
    pub usage_limit: Option<Option<i64>>,
    /// At least 1; `null` removes it.
    #[serde(default, deserialize_with = "some")]
    pub usage_limit_per_customer: Option<Option<i64>>,
    /// Non-negative; `null` removes it.
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<MoneyInput>)]
    pub minimum_subtotal: Option<Option<MoneyInput>>,
    /// Default false.
    pub stackable: Option<bool>,
    /// Default true.
    pub active: Option<bool>,
}

/// A present JSON field, even `null`, becomes `Some`: tells "absent" from "cleared".
fn some<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl PromotionInput {
    /// The fields of `patch` over `self`.
    pub fn overlay(self, patch: PromotionInput) -> PromotionInput {
        PromotionInput {
            name: patch.name.or(self.name),
            kind: patch.kind.or(self.kind),
            basis_points: patch.basis_points.or(self.basis_points),
            amounts: patch.amounts.or(self.amounts),
            target: patch.target.or(self.target),
            target_ids: patch.target_ids.or(self.target_ids),
            coupon_code: patch.coupon_code.or(self.coupon_code),
            starts_at: patch.starts_at.or(self.starts_at),
            ends_at: patch.ends_at.or(self.ends_at),
            usage_limit: patch.usage_limit.or(self.usage_limit),
            usage_limit_per_customer: patch
                .usage_limit_per_customer
                .or(self.usage_limit_per_customer),
            minimum_subtotal: patch.minimum_subtotal.or(self.minimum_subtotal),
            stackable: patch.stackable.or(self.stackable),
            active: patch.active.or(self.active),
        }
    }
}

impl From<&PromotionSpec> for PromotionInput {
    fn from(s: &PromotionSpec) -> Self {
        let (kind, basis_points, amounts) = match &s.discount {
            Discount::Percentage(bp) => ("percentage", Some(*bp), None),
            Discount::FixedAmount(a) => ("fixed_amount", None, Some(a.clone())),
        };
        let time = |t: Option<i64>| Some(t.map(rfc3339));
        Self {
            name: Some(s.name.clone()),
            kind: Some(kind.to_owned()),
            basis_points,
            amounts: amounts.map(|a| a.into_iter().map(MoneyInput::from).collect()),
            target: Some(s.target.kind().to_owned()),
            target_ids: Some(s.target.ids().to_vec()),
            coupon_code: Some(s.coupon_code.clone()),
            starts_at: time(s.starts_at),
            ends_at: time(s.ends_at),
            usage_limit: Some(s.usage_limit),
            usage_limit_per_customer: Some(s.usage_limit_per_customer),
            minimum_subtotal: Some(s.minimum_subtotal.map(MoneyInput::from)),
            stackable: Some(s.stackable),
            active: Some(s.active),
        }
    }
}

/// Collects field errors while parsing.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    fn money(&mut self, field: &str, m: &MoneyInput, min: i64) -> Option<Money> {
        let currency = Currency::parse(&m.currency)
            .map_err(|e| {
                self.add(
                    format!("{field}.currency"),
                    "invalid_currency",
                    e.to_string(),
                )
            })
            .ok()?;
        if m.amount < min {
            self.add(
                format!("{field}.amount"),
                "out_of_range",
                format!("amount must be at least {min}"),
            );
            return None;
        }
        Some(Money::new(m.amount, currency))
    }

    fn time(&mut self, field: &'static str, value: Option<Option<String>>) -> Option<i64> {
        let text = value.flatten()?;
        match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(t) => Some(t.timestamp_micros()),
            Err(_) => {
                self.add(field, "invalid_time", "expected an RFC 3339 time");
                None
            }
        }
    }

    fn limit(&mut self, field: &'static str, value: Option<Option<i64>>) -> Option<i64> {
        let n = value.flatten()?;
        if n < 1 {
            self.add(field, "out_of_range", "must be at least 1");
        }
        Some(n)
    }
}

/// Upper-cases a coupon code and checks its characters and length.
pub fn normalize_coupon(code: &str) -> Option<String> {
    let upper = code.trim().to_ascii_uppercase();
    let ok = (3..=64).contains(&upper.len())
        && upper
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    ok.then_some(upper)
}

impl PromotionSpec {
    /// Checks every field; all problems are reported at once.
    pub fn parse(input: PromotionInput) -> Result<Self, Vec<FieldError>> {
        let mut e = Errors::default();
        let name = input.name.as_deref().unwrap_or_default().trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            e.add("name", "invalid_length", "name must be 1 to 200 characters");
        }
        let discount = parse_discount(&mut e, &input);
        let target = parse_target(&mut e, input.target.as_deref(), input.target_ids);
        let coupon_code = input.coupon_code.flatten().and_then(|c| {
            let normalized = normalize_coupon(&c);
            if normalized.is_none() {
                e.add(
                    "coupon_code",
                    "invalid_coupon_code",
                    "3 to 64 letters, digits, `-` or `_`",
                );
            }
            normalized
        });
        let starts_at = e.time("starts_at", input.starts_at);
        let ends_at = e.time("ends_at", input.ends_at);
        if let (Some(s), Some(end)) = (starts_at, ends_at)
            && end <= s
        {
            e.add(
                "ends_at",
                "invalid_range",
                "ends_at must be after starts_at",
            );
        }
        let usage_limit = e.limit("usage_limit", input.usage_limit);
        let usage_limit_per_customer =
            e.limit("usage_limit_per_customer", input.usage_limit_per_customer);
        let minimum_subtotal = input
            .minimum_subtotal
            .flatten()
            .and_then(|m| e.money("minimum_subtotal", &m, 0));
        match (discount, target, e.0.is_empty()) {
            (Some(discount), Some(target), true) => Ok(Self {
                name,
                discount,
                target,
                coupon_code,
                starts_at,
                ends_at,
                usage_limit,
                usage_limit_per_customer,
                minimum_subtotal,
                stackable: input.stackable.unwrap_or(false),
                active: input.active.unwrap_or(true),
            }),
            _ => Err(e.0),
        }
    }
}

fn parse_discount(e: &mut Errors, input: &PromotionInput) -> Option<Discount> {
    match input.kind.as_deref() {
        Some("percentage") => match input.basis_points {
            Some(bp) if (1..=10_000).contains(&bp) => Some(Discount::Percentage(bp)),
            _ => {
                e.add("basis_points", "out_of_range", "1 to 10000 basis points");
                None
            }
        },
        Some("fixed_amount") => {
            let list = input.amounts.as_deref().unwrap_or_default();
            if list.is_empty() || list.len() > MAX_AMOUNTS {
                e.add(
                    "amounts",
                    "invalid_length",
                    "1 to 50 amounts, one per currency",
                );
                return None;
            }
            let mut amounts: Vec<Money> = Vec::new();
            for (i, m) in list.iter().enumerate() {
                let field = format!("amounts[{i}]");
                if let Some(money) = e.money(&field, m, 1) {
                    if amounts.iter().any(|a| a.currency == money.currency) {
                        e.add(field, "duplicate_currency", "one amount per currency");
                    }
                    amounts.push(money);
                }
            }
            (amounts.len() == list.len()).then_some(Discount::FixedAmount(amounts))
        }
        _ => {
            e.add("kind", "invalid_kind", "kind is percentage or fixed_amount");
            None
        }
    }
}

fn parse_target(e: &mut Errors, kind: Option<&str>, ids: Option<Vec<String>>) -> Option<Target> {
    let ids = ids.unwrap_or_default();
    let checked = |e: &mut Errors| {
        if ids.is_empty() || ids.len() > MAX_TARGET_IDS {
            e.add("target_ids", "invalid_length", "1 to 1000 ids");
            return None;
        }
        if let Some(i) = ids.iter().position(|id| id.is_empty() || id.len() > 64) {
            e.add(format!("target_ids[{i}]"), "invalid_id", "not an id");
            return None;
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        Some(unique)
    };
    match kind {
        Some("all") if ids.is_empty() => Some(Target::All),
        Some("all") => {
            e.add("target_ids", "not_allowed", "target `all` takes no ids");
            None
        }
        Some("categories") => checked(e).map(Target::Categories),
        Some("products") => checked(e).map(Target::Products),
        _ => {
            e.add("target", "invalid_target", "all, categories or products");
            None
        }
    }
}

#[cfg(test)]
mod tests;
