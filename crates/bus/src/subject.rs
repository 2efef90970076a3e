//! NATS-style subjects: validation and wildcard matching (`*` one token, `>` the rest).
//!
//! The embedded log matches in Rust what NATS matches on the server, so both backends must
//! agree on these rules: tokens are separated by `.`, none is empty, `*` stands for exactly one
//! token, `>` for one or more and only as the last token.

use crate::BusError;

/// Checks a concrete subject (an event's `type`): no wildcards, no empty tokens, no whitespace.
pub(crate) fn validate_subject(subject: &str) -> Result<(), BusError> {
    check(subject, false)
}

/// Checks a subscription pattern: like a subject, but `*` and a final `>` are allowed.
pub(crate) fn validate_pattern(pattern: &str) -> Result<(), BusError> {
    check(pattern, true)
}

fn check(text: &str, wildcards: bool) -> Result<(), BusError> {
    let invalid = |why: &'static str| Err(BusError::InvalidSubject(text.to_owned(), why));
    if text.is_empty() {
        return invalid("empty");
    }
    if text.len() > 255 {
        return invalid("longer than 255 bytes");
    }
    let tokens: Vec<&str> = text.split('.').collect();
    let last = tokens.len() - 1;
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return invalid("empty token");
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("whitespace or control character");
        }
        match *token {
            "*" if wildcards => {}
            ">" if wildcards && i == last => {}
            ">" if wildcards => return invalid("`>` must be the last token"),
            _ if token.contains(['*', '>']) => {
                return invalid(if wildcards {
                    "a wildcard must be a whole token"
                } else {
                    "wildcards are not allowed in an event subject"
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `subject` matches `pattern` under NATS rules.
pub(crate) fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(s)) if literal == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(matches("order.created", "order.created"));
        assert!(!matches("order.created", "order.paid"));
        assert!(!matches("order.created", "order.created.v2"));
        assert!(!matches("order.created.v2", "order.created"));
        assert!(!matches("order", "order.created"));
    }

    #[test]
    fn star_matches_exactly_one_token() {
        assert!(matches("order.*", "order.created"));
        assert!(matches("*.created", "order.created"));
        assert!(matches("inventory.*.low", "inventory.stock.low"));
        assert!(!matches("order.*", "order"));
        assert!(!matches("order.*", "order.created.v2"));
        assert!(!matches("order.*", "payment.created"));
    }

    #[test]
    fn greater_than_matches_one_or_more_trailing_tokens() {
        assert!(matches("inventory.>", "inventory.stock.updated"));
        assert!(matches("inventory.>", "inventory.stock"));
        assert!(!matches("inventory.>", "inventory"));
        assert!(matches(">", "analytics.dlq"));
        assert!(matches("*.stock.>", "inventory.stock.low"));
    }

    #[test]
    fn platform_subjects_are_valid() {
        for s in [
            "command.checkout",
            "order.created",
            "inventory.stock.updated",
            "payment.refunded",
            "notification.in_app",
            "organization.member.added",
            "analytics.dlq",
        ] {
            validate_subject(s).unwrap();
        }
    }

    #[test]
    fn rejects_malformed_subjects() {
        for s in [
            "",
            "order.",
            ".order",
            "order..created",
            "order created",
            "order.*",
            "a.>",
        ] {
            assert!(validate_subject(s).is_err(), "{s:?} should be rejected");
        }
        assert!(validate_subject(&"a".repeat(256)).is_err());
    }

    #[test]
    fn patterns_allow_whole_token_wildcards_only() {
        for p in ["order.*", "*.created", "inventory.>", ">", "*.*.low"] {
            validate_pattern(p).unwrap();
        }
        for p in ["order.>.x", "ord*", "order.cre>", "", "order..*"] {
            assert!(validate_pattern(p).is_err(), "{p:?} should be rejected");
        }
    }
}
