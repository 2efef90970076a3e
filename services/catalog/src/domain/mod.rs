//! Catalog domain types and rules.

pub mod category;
pub mod pricing;
pub mod product;
pub mod promotion;

/// A URL slug: 1–120 characters of lower-case letters, digits and single `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    /// Checks a slug given by a client.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok = (1..=120).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-')
            && !raw.contains("--");
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err("lower-case letters, digits and single dashes, at most 120".into())
        }
    }

    /// Makes a slug from a title: ASCII letters and digits kept, the rest turned into dashes.
    pub fn from_title(title: &str) -> Self {
        let mut out = String::new();
        for c in title.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        let mut slug: String = out.trim_end_matches('-').chars().take(100).collect();
        slug = slug.trim_end_matches('-').to_owned();
        if slug.is_empty() {
            slug.push_str("item");
        }
        Self(slug)
    }

    /// The slug with a numeric suffix, `-2`, `-3`…, for collisions.
    pub fn with_suffix(&self, n: u32) -> Self {
        if n <= 1 {
            self.clone()
        } else {
            Self(format!("{}-{n}", self.0))
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a string's length in characters.
pub fn check_len(s: &str, min: usize, max: usize) -> Result<&str, String> {
    let n = s.chars().count();
    if n < min {
        Err(if min == 1 {
            "must not be empty".into()
        } else {
            format!("at least {min} characters")
        })
    } else if n > max {
        Err(format!("at most {max} characters"))
    } else {
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_made_from_titles() {
        assert_eq!(
            Slug::from_title("Vintage Leather Backpack!").as_str(),
            "vintage-leather-backpack"
        );
        assert_eq!(Slug::from_title("  ").as_str(), "item");
        assert_eq!(
            Slug::from_title("Été 2026").with_suffix(3).as_str(),
            "t-2026-3"
        );
    }

    #[test]
    fn slugs_given_by_clients_are_checked() {
        assert!(Slug::parse("red-shoes").is_ok());
        assert!(Slug::parse("Red Shoes").is_err());
        assert!(Slug::parse("-x").is_err());
        assert!(Slug::parse("").is_err());
    }
}
