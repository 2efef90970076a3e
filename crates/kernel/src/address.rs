//! A postal address, as checkout takes it and address books keep it.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Recipient, 1 to 200 characters.
    pub name: String,
    /// Street and number, 1 to 200 characters.
    pub line1: String,
    /// More of the street address, up to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// 1 to 100 characters.
    pub city: String,
    /// State or province code, up to 50 characters; selects a regional tax rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// 1 to 20 letters, digits, spaces or dashes.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
    /// Up to 30 digits, spaces and `+-()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl Address {
    /// Field errors of this address, named under `field` (e.g. `shipping_address`); the
    /// country is upper-cased in place.
    pub fn check(&mut self, field: &str, errors: &mut Vec<FieldError>) {
        let mut text = |name: &str, value: &str, min: usize, max: usize| {
            let len = value.trim().chars().count();
            if len < min || len > max || value.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    format!("{field}.{name}"),
                    "invalid_length",
                    format!("{min} to {max} characters, no control characters"),
                ));
            }
        };
        text("name", &self.name, 1, 200);
        text("line1", &self.line1, 1, 200);
        if let Some(line2) = &self.line2 {
            text("line2", line2, 0, 200);
        }
        text("city", &self.city, 1, 100);
        if let Some(region) = &self.region {
            text("region", region, 1, 50);
        }
        let postal = self.postal_code.trim();
        if postal.is_empty()
            || postal.len() > 20
            || !postal
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
        {
            errors.push(FieldError::new(
                format!("{field}.postal_code"),
                "invalid_postal_code",
                "1 to 20 letters, digits, spaces or dashes",
            ));
        }
        self.country = self.country.trim().to_ascii_uppercase();
        if !is_country(&self.country) {
            errors.push(FieldError::new(
                format!("{field}.country"),
                "invalid_country",
                "an ISO 3166-1 alpha-2 code such as `DE`",
            ));
        }
        if let Some(phone) = &self.phone {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            if phone.len() > 30
                || digits < 4
                || !phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-()".contains(c))
            {
                errors.push(FieldError::new(
                    format!("{field}.phone"),
                    "invalid_phone",
                    "up to 30 digits, spaces and `+-()`",
                ));
            }
        }
    }
}

/// Two ASCII capital letters.
pub fn is_country(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        let mut ok = Address {
            name: "Ada".into(),
            line1: "1 Main St".into(),
            line2: None,
            city: "Berlin".into(),
            region: None,
            postal_code: "10115".into(),
            country: "de".into(),
            phone: Some("+49 30 1234".into()),
        };
        let mut errors = Vec::new();
        ok.check("shipping_address", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(ok.country, "DE");
        let mut bad = ok.clone();
        bad.country = "Germany".into();
        bad.name = String::new();
        bad.postal_code = "<script>".into();
        bad.check("shipping_address", &mut errors);
        assert_eq!(errors.len(), 3, "{errors:?}");
    }
}
