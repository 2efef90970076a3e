//! Email addresses: parsed once, normalized, trusted afterwards.
//!
//! Choices: addresses are ASCII only (an internationalized domain is accepted in its punycode
//! form `xn--…`; non-ASCII local parts are rejected, since few mail systems deliver them and
//! they invite look-alike accounts). The whole address is lower-cased, so `Ann@X.io` and
//! `ann@x.io` are one account: almost every provider treats local parts case-insensitively.
//! Quoted local parts and IP-literal domains are not accepted.

use std::fmt;

use crate::error::FieldError;

/// Longest address (RFC 5321 path limit minus the angle brackets).
pub const MAX_LEN: usize = 254;
/// Longest local part (RFC 5321).
pub const MAX_LOCAL_LEN: usize = 64;

/// A validated, normalized email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Trims, validates and lower-cases an address; `field` names it in the error.
    pub fn parse(input: &str, field: &str) -> Result<Self, FieldError> {
        let invalid = |message: &str| FieldError::new(field, "invalid_email", message);
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new(field, "required", "email is required"));
        }
        if trimmed.len() > MAX_LEN {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("at most {MAX_LEN} characters"),
            ));
        }
        if !trimmed.is_ascii() {
            return Err(invalid(
                "only ASCII addresses are accepted (use punycode domains)",
            ));
        }
        if trimmed
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(invalid(
                "an email address has no spaces or control characters",
            ));
        }
        let lower = trimmed.to_ascii_lowercase();
        let mut parts = lower.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("an email address has exactly one @"));
        };
        if !valid_local(local) {
            return Err(invalid("the part before @ is not valid"));
        }
        if !valid_domain(domain) {
            return Err(invalid("the domain is not valid"));
        }
        Ok(Self(lower))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalized address, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_local(local: &str) -> bool {
    const SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-.";
    !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SPECIALS.contains(c))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Email, FieldError> {
        Email::parse(s, "email")
    }

    #[test]
    fn normalizes_by_trimming_and_lower_casing() {
        assert_eq!(
            parse("  Ann.Lee+shop@Example.COM ").unwrap().as_str(),
            "ann.lee+shop@example.com"
        );
        assert_eq!(
            parse("x@xn--bcher-kva.example").unwrap().as_str(),
            "x@xn--bcher-kva.example"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(260));
        for bad in [
            "",
            "   ",
            "plain",
            "a@b",
            "@example.com",
            "a@@example.com",
            "a@b@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a\0@example.com",
            "a@example.com\u{7}",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "a@-x.com",
            "a@x-.com",
            "a@example..com",
            "a@example.123",
            "\"a\"@example.com",
            "a@[127.0.0.1]",
            &long_local,
            &long_total,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rejects_non_ascii_and_invisible_characters() {
        for bad in [
            "jos\u{e9}@example.com",
            "a@b\u{fc}cher.de",
            "a\u{200B}b@example.com",
            "a@example.com\u{202E}",
            "\u{FEFF}a@example.com",
            "\u{430}dmin@example.com",
        ] {
            assert_eq!(parse(bad).unwrap_err().code, "invalid_email", "{bad:?}");
        }
    }
}
