//! Users: display names, platform roles, the account record.

use mercato_kernel::FieldError;
use mercato_kernel::auth::Role;

use super::is_deceptive;

/// Most characters in a display name.
pub const MAX_NAME_CHARS: usize = 200;
/// Most roles a user holds.
const MAX_ROLES: usize = 8;

/// A display name: trimmed, 1 to 200 characters, no control or invisible reordering
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Validates a display name.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("name", "required", "name is required"));
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(FieldError::new(
                "name",
                "too_long",
                format!("at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if trimmed.chars().any(|c| c.is_control() || is_deceptive(c)) {
            return Err(FieldError::new(
                "name",
                "invalid_characters",
                "no control, invisible or text-direction characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Platform roles of a user, deduplicated, in a stable order; never empty (`customer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// The default: `customer`.
    pub fn customer() -> Self {
        Self(vec![Role::Customer])
    }

    /// Parses role names given by an admin; unknown names are an error.
    pub fn parse(names: &[String]) -> Result<Self, FieldError> {
        if names.len() > MAX_ROLES {
            return Err(FieldError::new("roles", "too_many", "too many roles"));
        }
        let mut roles = Vec::new();
        for name in names {
            let role = Role::parse(name).ok_or_else(|| {
                FieldError::new(
                    "roles",
                    "unknown_role",
                    "roles are customer, staff and admin",
                )
            })?;
            roles.push(role);
        }
        Ok(Self::from_roles(roles))
    }

    /// Roles as stored: unknown names are dropped.
    pub fn from_stored(names: &[String]) -> Self {
        Self::from_roles(names.iter().filter_map(|n| Role::parse(n)).collect())
    }

    fn from_roles(mut roles: Vec<Role>) -> Self {
        if !roles.contains(&Role::Customer) {
            roles.push(Role::Customer);
        }
        roles.sort_by_key(|r| match r {
            Role::Customer => 0,
            Role::Staff => 1,
            Role::Admin => 2,
        });
        roles.dedup();
        Self(roles)
    }

    /// With `role` added.
    pub fn with(mut self, role: Role) -> Self {
        self.0.push(role);
        Self::from_roles(self.0)
    }

    /// Whether `role` is held.
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// Role names, as in tokens.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

/// A user account as the domain sees it.
#[derive(Debug, Clone)]
pub struct User {
    /// `usr_…`.
    pub id: String,
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Platform roles.
    pub roles: Roles,
    /// When the email was verified (epoch microseconds).
    pub email_verified_at: Option<i64>,
    /// When the account was disabled (epoch microseconds).
    pub disabled_at: Option<i64>,
    /// Epoch microseconds.
    pub created_at: i64,
    /// Epoch microseconds.
    pub updated_at: i64,
}

impl User {
    /// Whether an admin disabled the account.
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(Name::parse("  Ann Lee ").unwrap().as_str(), "Ann Lee");
        assert!(Name::parse(&"\u{e9}".repeat(200)).is_ok());
        assert_eq!(Name::parse(&"a".repeat(201)).unwrap_err().code, "too_long");
        assert_eq!(Name::parse(" \t ").unwrap_err().code, "required");
    }

    #[test]
    fn names_reject_control_and_invisible_characters() {
        for bad in [
            "a\0b",
            "a\nb",
            "evil\u{202E}gpj.exe",
            "a\u{200B}b",
            "\u{2066}x",
        ] {
            assert_eq!(
                Name::parse(bad).unwrap_err().code,
                "invalid_characters",
                "{bad:?}"
            );
        }
        assert!(
            Name::parse("\u{645}\u{62d}\u{645}\u{62f}").is_ok(),
            "Arabic is fine"
        );
        assert!(
            Name::parse("\u{1F469}\u{200D}\u{1F4BB} Dev").is_ok(),
            "ZWJ emoji are fine"
        );
    }

    #[test]
    fn roles_always_include_customer_and_reject_unknown_names() {
        let roles = Roles::parse(&["admin".into(), "staff".into(), "admin".into()]).unwrap();
        assert_eq!(roles.names(), ["customer", "staff", "admin"]);
        assert_eq!(Roles::parse(&[]).unwrap(), Roles::customer());
        assert!(Roles::parse(&["owner".into()]).is_err());
        assert_eq!(Roles::from_stored(&["bogus".into()]).names(), ["customer"]);
    }
}
