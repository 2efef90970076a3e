//! Organizations (B2B tenants): names, slugs, organization roles and who may do what.

use std::fmt;

use mercato_kernel::FieldError;
use sha2::{Digest, Sha256};

use super::is_deceptive;

/// Longest organization or team name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest team description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Shortest and longest slug, in bytes (ASCII only).
pub const SLUG_LEN: std::ops::RangeInclusive<usize> = 2..=63;
/// How long an invitation can be accepted: 7 days, in microseconds.
pub const INVITATION_TTL_MICROS: i64 = 7 * 24 * 3600 * 1_000_000;

/// A member's role inside one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrgRole {
    /// Plain member: reads the organization, its teams and members.
    Member,
    /// Manages teams, members and invitations.
    Admin,
    /// Everything an admin may, plus owner changes and ownership transfer.
    Owner,
}

impl OrgRole {
    /// The role's name: `owner`, `admin` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// The role of this name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// Parses a role from a request field.
    pub fn parse_field(name: &str, field: &str) -> Result<Self, FieldError> {
        Self::parse(name).ok_or_else(|| {
            FieldError::new(field, "invalid_role", "role must be owner, admin or member")
        })
    }

    /// Whether the role manages the organization (owner or admin).
    pub fn manages(self) -> bool {
        self >= Self::Admin
    }

    /// Whether an `self` may give `target`, now holding `from`, the role `to`: managers may,
    /// but only owners touch the owner role.
    pub fn may_change_role(self, from: OrgRole, to: OrgRole) -> bool {
        self.manages() && (self == Self::Owner || (from != Self::Owner && to != Self::Owner))
    }

    /// Whether `self` may remove a member holding `target` (leaving oneself is always allowed).
    pub fn may_remove(self, target: OrgRole, is_self: bool) -> bool {
        is_self || (self.manages() && (self == Self::Owner || target != Self::Owner))
    }

    /// Whether `self` may invite someone as `role`.
    pub fn may_invite(self, role: OrgRole) -> bool {
        self.manages() && (self == Self::Owner || role != Self::Owner)
    }
}

impl fmt::Display for OrgRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Trims and checks a display name (organization or team): 1 to 100 characters, no control
/// or invisible reordering characters. Any script is fine.
pub fn parse_name(input: &str, field: &str) -> Result<String, FieldError> {
    let name = input.trim();
    if name.is_empty() {
        return Err(FieldError::new(field, "required", "name is required"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(|c| c.is_control() || is_deceptive(c)) {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            "name contains control or invisible characters",
        ));
    }
    Ok(name.to_owned())
}

/// Checks an optional description: at most 500 characters, no control characters but
/// line breaks and tabs.
pub fn parse_description(input: &str, field: &str) -> Result<String, FieldError> {
    let text = input.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| (c.is_control() && !matches!(c, '\n' | '\t')) || is_deceptive(c))
    {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            "description contains control or invisible characters",
        ));
    }
    Ok(text.to_owned())
}

/// Checks a slug given by the client: 2 to 63 of `a-z`, `0-9` and single inner hyphens.
pub fn parse_slug(input: &str, field: &str) -> Result<String, FieldError> {
    let valid = SLUG_LEN.contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !input.starts_with('-')
        && !input.ends_with('-')
        && !input.contains("--");
    if valid {
        Ok(input.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "invalid_slug",
            "2 to 63 lowercase letters, digits and single hyphens, not at either end",
        ))
    }
}

/// A slug derived from a name: ASCII letters and digits kept (lower-cased), anything else
/// becomes one hyphen. `None` when too little is left (e.g. a name in another script).
pub fn slugify(name: &str) -> Option<String> {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= *SLUG_LEN.end() {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    (slug.len() >= *SLUG_LEN.start()).then_some(slug)
}

/// A random slug suffix (6 hex characters) to make a derived slug unique.
pub fn slug_suffix() -> String {
    hex::encode(rand::random::<[u8; 3]>())
}

/// A fresh invitation token (`inv_` + 32 random bytes in hex) and its SHA-256 to store.
pub fn new_invitation_token() -> (String, String) {
    let token = format!("inv_{}", hex::encode(rand::random::<[u8; 32]>()));
    let hash = token_hash(&token);
    (token, hash)
}

/// SHA-256 of a token, lowercase hex: what the database holds.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_touch_the_owner_role() {
        use OrgRole::*;
        assert!(Admin.may_change_role(Member, Admin));
        assert!(!Admin.may_change_role(Owner, Admin));
        assert!(!Admin.may_change_role(Member, Owner));
        assert!(Owner.may_change_role(Owner, Admin));
        assert!(!Member.may_change_role(Member, Admin));
        assert!(Member.may_remove(Member, true) && !Member.may_remove(Member, false));
        assert!(!Admin.may_remove(Owner, false) && Owner.may_remove(Owner, false));
        assert!(Admin.may_invite(Admin) && !Admin.may_invite(Owner));
    }

    #[test]
    fn names_accept_any_script_but_no_invisible_characters() {
        assert_eq!(
            parse_name("  Åsa & Søn 株式会社 ", "name").unwrap(),
            "Åsa & Søn 株式会社"
        );
        assert!(parse_name("   ", "name").is_err());
        assert!(parse_name("evil\u{202E}gnp", "name").is_err());
        assert!(parse_name("tab\tname", "name").is_err());
        assert!(parse_name(&"é".repeat(101), "name").is_err());
        assert!(parse_name(&"é".repeat(100), "name").is_ok());
    }

    #[test]
    fn slugs_are_checked_and_derived() {
        assert!(parse_slug("acme-2", "slug").is_ok());
        for bad in ["a", "-acme", "acme-", "ac--me", "Acme", "acmé", ""] {
            assert!(parse_slug(bad, "slug").is_err(), "{bad}");
        }
        assert_eq!(slugify("  ACME, Inc. ").as_deref(), Some("acme-inc"));
        assert_eq!(slugify("株式会社"), None);
        assert!(slugify(&"a".repeat(200)).is_some_and(|s| s.len() == 63));
    }

    #[test]
    fn invitation_tokens_are_random_and_stored_hashed() {
        let (a, hash) = new_invitation_token();
        let (b, _) = new_invitation_token();
        assert_ne!(a, b);
        assert_eq!(hash, token_hash(&a));
        assert!(!hash.contains(&a[4..]));
    }
}
