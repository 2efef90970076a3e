//! Fraud and risk scoring: rules add points for what they see, the sum (capped at 100)
//! decides `allow`, `review` (a person decides) or `block`. Every rule that fired is kept
//! as a reason, so staff see why.

use serde::{Deserialize, Serialize};

/// What the rules look at, gathered before the provider is asked.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Minor units.
    pub amount: i64,
    /// Buyer's email (lower case).
    pub email: Option<String>,
    /// Country of the billing address (ISO 3166-1 alpha-2).
    pub billing_country: Option<String>,
    /// Country the order ships to.
    pub shipping_country: Option<String>,
    /// Payments with the same card in the last hour, this one excluded.
    pub card_last_hour: i64,
    /// Payments with the same email in the last hour, this one excluded.
    pub email_last_hour: i64,
    /// Payments from the same IP in the last hour, this one excluded.
    pub ip_last_hour: i64,
    /// Succeeded payments of this email in this currency: how many, and their average.
    pub history: (i64, i64),
    /// Blocklist entries that match (`email`, `email_domain`, `ip`, `card`).
    pub blocked: Vec<String>,
}

/// Where the decision changes.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// At or above: a person reviews.
    pub review: i64,
    /// At or above: refused.
    pub block: i64,
}

/// What the rules decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Hold for a staff decision.
    Review,
    /// Refuse.
    Block,
}

impl Decision {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Review => "review",
            Self::Block => "block",
        }
    }
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// Stable code, e.g. `card_velocity`.
    pub code: String,
    /// Points it added.
    pub points: i64,
    /// What it saw.
    pub detail: String,
}

/// The score, decision and reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// 0–100.
    pub score: i64,
    /// From the score and the thresholds.
    pub decision: Decision,
    /// Every rule that fired.
    pub reasons: Vec<Reason>,
}

/// Email domains that hand out throwaway addresses.
const DISPOSABLE_DOMAINS: &[&str] = &[
    "10minutemail.com",
    "discard.email",
    "dispostable.com",
    "fakeinbox.com",
    "getnada.com",
    "guerrillamail.com",
    "mailinator.com",
    "maildrop.cc",
    "mintemail.com",
    "sharklasers.com",
    "temp-mail.org",
    "tempmail.com",
    "throwawaymail.com",
    "trashmail.com",
    "yopmail.com",
];

/// Whether `email` is at a throwaway-address domain.
pub fn is_disposable(email: &str) -> bool {
    email
        .rsplit_once('@')
        .is_some_and(|(_, domain)| DISPOSABLE_DOMAINS.contains(&domain))
}

/// Amounts above this (minor units) are unusual for a first purchase.
const FIRST_PURCHASE_LIMIT: i64 = 100_000;

/// Scores `s`.
pub fn assess(s: &Signals, t: &Thresholds) -> Assessment {
    let mut reasons = Vec::new();
    let mut add = |code: &str, points: i64, detail: String| {
        reasons.push(Reason {
            code: code.to_owned(),
            points,
            detail,
        });
    };
    if !s.blocked.is_empty() {
        add(
            "blocklist",
            100,
            format!("on the blocklist: {}", s.blocked.join(", ")),
        );
    }
    match s.card_last_hour {
        n if n >= 10 => add(
            "card_velocity",
            50,
            format!("{n} payments with this card in an hour"),
        ),
        n if n >= 3 => add(
            "card_velocity",
            25,
            format!("{n} payments with this card in an hour"),
        ),
        _ => {}
    }
    if s.email_last_hour >= 5 {
        add(
            "email_velocity",
            20,
            format!("{} payments from this email in an hour", s.email_last_hour),
        );
    }
    if s.ip_last_hour >= 10 {
        add(
            "ip_velocity",
            20,
            format!("{} payments from this IP in an hour", s.ip_last_hour),
        );
    }
    let (count, average) = s.history;
    if count > 0 && average > 0 && s.amount > average.saturating_mul(5) {
        add(
            "amount_vs_history",
            20,
            format!(
                "{} is over five times this customer's average of {average}",
                s.amount
            ),
        );
    } else if count == 0 && s.amount > FIRST_PURCHASE_LIMIT {
        add(
            "large_first_purchase",
            15,
            format!("{} on a customer's first purchase", s.amount),
        );
    }
    if let (Some(billing), Some(shipping)) = (&s.billing_country, &s.shipping_country)
        && billing != shipping
    {
        add(
            "country_mismatch",
            15,
            format!("billed in {billing}, shipped to {shipping}"),
        );
    }
    if s.email.as_deref().is_some_and(is_disposable) {
        add(
            "disposable_email",
            25,
            "a throwaway email address".to_owned(),
        );
    }
    let score = reasons.iter().map(|r| r.points).sum::<i64>().min(100);
    let decision = if score >= t.block {
        Decision::Block
    } else if score >= t.review {
        Decision::Review
    } else {
        Decision::Allow
    };
    Assessment {
        score,
        decision,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        review: 50,
        block: 80,
    };

    #[test]
    fn an_ordinary_payment_is_allowed_with_no_reasons() {
        let a = assess(
            &Signals {
                amount: 2_000,
                history: (3, 1_500),
                ..Signals::default()
            },
            &T,
        );
        assert_eq!((a.score, a.decision), (0, Decision::Allow));
        assert!(a.reasons.is_empty());
    }

    #[test]
    fn rules_add_up_to_review_and_block() {
        let review = assess(
            &Signals {
                amount: 200_000,
                email: Some("x@mailinator.com".into()),
                billing_country: Some("DE".into()),
                shipping_country: Some("NG".into()),
                ..Signals::default()
            },
            &T,
        );
        assert_eq!(review.score, 55);
        assert_eq!(review.decision, Decision::Review);
        let codes: Vec<&str> = review.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "large_first_purchase",
                "country_mismatch",
                "disposable_email"
            ]
        );

        let block = assess(
            &Signals {
                amount: 100,
                card_last_hour: 12,
                email_last_hour: 6,
                ip_last_hour: 11,
                history: (1, 100),
                ..Signals::default()
            },
            &T,
        );
        assert_eq!((block.score, block.decision), (90, Decision::Block));
    }

    #[test]
    fn a_blocklisted_payment_is_blocked_whatever_else() {
        let a = assess(
            &Signals {
                amount: 100,
                blocked: vec!["email".into()],
                ..Signals::default()
            },
            &T,
        );
        assert_eq!((a.score, a.decision), (100, Decision::Block));
    }

    #[test]
    fn amounts_far_above_the_customers_history_are_flagged() {
        let a = assess(
            &Signals {
                amount: 10_001,
                history: (4, 2_000),
                ..Signals::default()
            },
            &T,
        );
        assert_eq!(a.reasons[0].code, "amount_vs_history");
        assert!(is_disposable("a@yopmail.com") && !is_disposable("a@example.com"));
    }
}
