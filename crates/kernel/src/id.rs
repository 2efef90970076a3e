//! Prefixed, time-sortable ids: `ord_0192f0c4…` (a UUIDv7 in lowercase hex after the prefix).

use crate::error::ApiError;

/// Makes a new id with `prefix` (e.g. `"ord"`): sortable by creation time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Checks that `id` has the given prefix and a well-formed body, for ids taken from a path or
/// a body. A malformed id is answered like an unknown one would be by the caller's lookup,
/// but without touching the database.
pub fn parse_id<'a>(prefix: &str, id: &'a str, field: &str) -> Result<&'a str, ApiError> {
    let valid = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| {
            body.len() == 32
                && body
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    if valid {
        Ok(id)
    } else {
        Err(ApiError::invalid_field(
            field,
            "invalid_id",
            format!("expected an id starting with `{prefix}_`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_creation() {
        let a = new_id("ord");
        let b = new_id("ord");
        assert!(a.starts_with("ord_"));
        assert_eq!(a.len(), 4 + 32);
        assert!(a < b);
    }

    #[test]
    fn parse_checks_prefix_and_body() {
        let id = new_id("usr");
        assert!(parse_id("usr", &id, "id").is_ok());
        assert!(parse_id("ord", &id, "id").is_err());
        assert!(parse_id("usr", "usr_../../etc", "id").is_err());
        assert!(parse_id("usr", "usr_", "id").is_err());
    }
}
