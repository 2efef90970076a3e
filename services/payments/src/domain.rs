//! Payment rules that need no database: the intent state machine, card checks, amounts.

use serde::Serialize;

/// Largest amount one payment may carry, in minor units (10^12).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// Lifecycle of a payment intent (Stripe's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created without a card.
    RequiresPaymentMethod,
    /// Has a card; waits for `process`.
    RequiresConfirmation,
    /// Risk checks asked for a staff decision (`review`).
    RequiresReview,
    /// The provider is being asked.
    Processing,
    /// Authorized; waits for `capture` (manual capture).
    RequiresCapture,
    /// Money captured.
    Succeeded,
    /// Declined or refused; final.
    Failed,
    /// Canceled before money moved; final.
    Canceled,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresReview => "requires_review",
            Self::Processing => "processing",
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "requires_payment_method" => Self::RequiresPaymentMethod,
            "requires_confirmation" => Self::RequiresConfirmation,
            "requires_review" => Self::RequiresReview,
            "processing" => Self::Processing,
            "requires_capture" => Self::RequiresCapture,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (RequiresPaymentMethod, RequiresConfirmation)
                | (RequiresConfirmation, Processing | RequiresReview)
                | (Processing, RequiresReview)
                | (RequiresReview, RequiresConfirmation | Failed | Canceled)
                | (Processing, RequiresCapture | Succeeded | Failed)
                | (RequiresCapture, Succeeded | Canceled)
                | (RequiresPaymentMethod | RequiresConfirmation, Canceled)
        )
    }
}

/// When the money is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    /// With the charge.
    Automatic,
    /// Later, by `capture`.
    Manual,
}

impl CaptureMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "automatic",
            Self::Manual => "manual",
        }
    }
}

/// Why a card was refused before any provider saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardProblem {
    /// Not 12–19 digits, or fails the Luhn check.
    Number,
    /// Month outside 1–12, or a year that is not a year.
    Expiry,
    /// The card expired.
    Expired,
    /// Not 3 or 4 digits (4 for American Express).
    Cvc,
}

/// Digits of a card number typed with spaces or dashes.
pub fn card_digits(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let ok = (12..=19).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && luhn(&digits);
    ok.then_some(digits)
}

/// The Luhn (mod 10) check every card number carries.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// The card network, from the number's leading digits.
pub fn brand(digits: &str) -> &'static str {
    let prefix = |n: usize| {
        digits
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    match (prefix(1), prefix(2), prefix(3), prefix(4)) {
        (4, ..) => "visa",
        (_, 34 | 37, ..) => "amex",
        (_, 51..=55, ..) | (.., 2221..=2720) => "mastercard",
        (.., 6011) | (_, 65, ..) | (_, _, 644..=649, _) => "discover",
        _ => "unknown",
    }
}

/// Checks expiry (not before `this_year`/`this_month`) and the CVC for `brand`; a two-digit
/// year means 20xx.
pub fn check_card(
    brand: &str,
    exp_month: u32,
    exp_year: u32,
    cvc: &str,
    (this_year, this_month): (u32, u32),
) -> Result<u32, CardProblem> {
    let year = if exp_year < 100 {
        2000 + exp_year
    } else {
        exp_year
    };
    if !(1..=12).contains(&exp_month) || !(2000..=2200).contains(&year) {
        return Err(CardProblem::Expiry);
    }
    if (year, exp_month) < (this_year, this_month) {
        return Err(CardProblem::Expired);
    }
    let cvc_len = if brand == "amex" { 4..=4 } else { 3..=3 };
    if !cvc_len.contains(&cvc.len()) || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardProblem::Cvc);
    }
    Ok(year)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_luhn_checked_and_branded() {
        assert_eq!(
            card_digits("4242 4242 4242 4242").as_deref(),
            Some("4242424242424242")
        );
        assert_eq!(card_digits("4242424242424241"), None);
        assert_eq!(card_digits("4242"), None);
        assert_eq!(card_digits("4242-4242-4242-424x"), None);
        assert_eq!(brand("4242424242424242"), "visa");
        assert_eq!(brand("5555555555554444"), "mastercard");
        assert_eq!(brand("2223003122003222"), "mastercard");
        assert_eq!(brand("378282246310005"), "amex");
        assert_eq!(brand("6011111111111117"), "discover");
        assert_eq!(brand("3056930009020004"), "unknown");
    }

    #[test]
    fn expiry_and_cvc_are_checked() {
        let now = (2026, 11);
        assert_eq!(check_card("visa", 11, 2026, "123", now), Ok(2026));
        assert_eq!(check_card("visa", 12, 30, "123", now), Ok(2030));
        assert_eq!(
            check_card("visa", 10, 2026, "123", now),
            Err(CardProblem::Expired)
        );
        assert_eq!(
            check_card("visa", 13, 2027, "123", now),
            Err(CardProblem::Expiry)
        );
        assert_eq!(
            check_card("visa", 1, 2027, "12", now),
            Err(CardProblem::Cvc)
        );
        assert_eq!(
            check_card("amex", 1, 2027, "123", now),
            Err(CardProblem::Cvc)
        );
        assert_eq!(check_card("amex", 1, 2027, "1234", now), Ok(2027));
    }

    #[test]
    fn the_state_machine_allows_only_its_edges() {
        use Status::*;
        assert!(RequiresConfirmation.can_become(Processing));
        assert!(Processing.can_become(Succeeded));
        assert!(RequiresCapture.can_become(Canceled));
        assert!(!Succeeded.can_become(Canceled));
        assert!(!Failed.can_become(Processing));
        assert!(!Processing.can_become(Canceled));
        for s in [
            RequiresPaymentMethod,
            RequiresConfirmation,
            RequiresReview,
            Processing,
            RequiresCapture,
            Succeeded,
            Failed,
            Canceled,
        ] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
