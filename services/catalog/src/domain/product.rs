//! Products and variants: the stored view, the parsed inputs and their rules.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use mercato_kernel::error::FieldError;
use mercato_kernel::money::{Currency, Money};
use serde::{Deserialize, Serialize};

use super::{Slug, check_len};

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Largest description, in bytes.
pub const MAX_DESCRIPTION: usize = 100 * 1024;
/// Most variants per product.
pub const MAX_VARIANTS: usize = 100;
/// Most tags per product.
pub const MAX_TAGS: usize = 50;
/// Most attributes per product.
pub const MAX_ATTRIBUTES: usize = 50;
/// Most images per product.
pub const MAX_IMAGES: usize = 20;
/// Most categories per product.
pub const MAX_CATEGORIES: usize = 20;

/// Lifecycle of a product: only `active` ones are public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// Being prepared; visible to staff only.
    Draft,
    /// For sale.
    Active,
    /// No longer sold; visible to staff only.
    Archived,
}

impl ProductStatus {
    /// Parses the stored or wire name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "draft" => Some(Self::Draft),
            "active" => Some(Self::Active),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }
}

/// A stock keeping unit: 1–64 characters of letters, digits, `-`, `_`, `.` and `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// Checks the SKU's characters and length.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if mercato_contracts::sku::is_valid(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(mercato_contracts::sku::RULE.into())
        }
    }

    /// The SKU as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A variant's price in one currency, as stored and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Price {
    /// Minor units.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The "was" price shown struck through, in minor units.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub compare_at_amount: Option<i64>,
}

/// A variant as stored and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Variant {
    /// `var_…`.
    pub id: String,
    /// Unique stock keeping unit.
    pub sku: String,
    /// Option values, e.g. `{"size": "M"}`.
    #[schema(value_type = Object)]
    pub options: BTreeMap<String, String>,
    /// One price per currency.
    pub prices: Vec<Price>,
    /// Shipping weight.
    pub weight_grams: Option<i64>,
    /// EAN/UPC.
    pub barcode: Option<String>,
    /// Units available, as inventory last reported.
    pub available: i64,
}

/// A product with its variants, as stored, sent and carried by `product.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    /// `prd_…`.
    pub id: String,
    /// Display title.
    pub title: String,
    /// Unique URL slug.
    pub slug: String,
    /// Markdown.
    pub description: String,
    /// Lifecycle state.
    pub status: ProductStatus,
    /// Brand name.
    pub brand: Option<String>,
    /// Free tags.
    pub tags: Vec<String>,
    /// Attributes, e.g. `{"material": "leather"}`.
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, String>,
    /// Image URLs.
    pub images: Vec<String>,
    /// SEO title.
    pub seo_title: Option<String>,
    /// SEO description.
    pub seo_description: Option<String>,
    /// Categories (`cat_…`) the product is listed in.
    pub category_ids: Vec<String>,
    /// Whether any variant has stock.
    pub in_stock: bool,
    /// Variants, in position order.
    pub variants: Vec<Variant>,
    /// Creation time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// Validated fields of a variant to write.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantDraft {
    /// Unique SKU.
    pub sku: Sku,
    /// Option values.
    pub options: BTreeMap<String, String>,
    /// Prices, one per currency, non-negative.
    pub prices: Vec<(Money, Option<i64>)>,
    /// Weight, ≥ 0.
    pub weight_grams: Option<i64>,
    /// Barcode.
    pub barcode: Option<String>,
}

/// Validated product fields; `None` leaves a field unchanged on update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductDraft {
    /// Title.
    pub title: Option<String>,
    /// Explicit slug (else generated from the title on create).
    pub slug: Option<Slug>,
    /// Description.
    pub description: Option<String>,
    /// Status.
    pub status: Option<ProductStatus>,
    /// Brand (`Some(None)` clears it).
    pub brand: Option<Option<String>>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Attributes.
    pub attributes: Option<BTreeMap<String, String>>,
    /// Image URLs.
    pub images: Option<Vec<String>>,
    /// SEO title (`Some(None)` clears it).
    pub seo_title: Option<Option<String>>,
    /// SEO description (`Some(None)` clears it).
    pub seo_description: Option<Option<String>>,
    /// Category ids.
    pub category_ids: Option<Vec<String>>,
    /// Variants (create only).
    pub variants: Vec<VariantDraft>,
}

/// Collects field errors while parsing one request.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    /// Records an invalid field.
    pub fn add(
        &mut self,
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// Keeps `Ok` values and records errors under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.add(field, "invalid", m)).ok()
    }
}

/// Checks a title: 1–200 characters, not blank.
pub fn parse_title(raw: &str) -> Result<String, String> {
    check_len(raw.trim(), 1, MAX_TITLE).map(str::to_owned)
}

/// Checks a list of tags: ≤ 50, each 1–50 characters.
pub fn parse_tags(tags: Vec<String>) -> Result<Vec<String>, String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    tags.into_iter()
        .map(|t| check_len(t.trim(), 1, 50).map(str::to_owned))
        .collect()
}

/// Checks attributes: ≤ 50 pairs, keys 1–50 and values ≤ 200 characters.
pub fn parse_attributes(map: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    if map.len() > MAX_ATTRIBUTES {
        return Err(format!("at most {MAX_ATTRIBUTES} attributes"));
    }
    for (k, v) in &map {
        check_len(k, 1, 50)?;
        check_len(v, 0, 200)?;
    }
    Ok(map)
}

/// Checks image URLs: ≤ 20, each an http(s) URL or a path on the shop's own host
/// (`/assets/…`), of at most 2,000 characters.
pub fn parse_images(urls: Vec<String>) -> Result<Vec<String>, String> {
    if urls.len() > MAX_IMAGES {
        return Err(format!("at most {MAX_IMAGES} images"));
    }
    for url in &urls {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let host_ok = rest.is_some_and(|r| r.split('/').next().is_some_and(|h| !h.is_empty()));
        // `//host/…` would name another host without a scheme.
        let own_path = url.starts_with('/') && !url.starts_with("//");
        if !(host_ok || own_path) || url.len() > 2000 || url.chars().any(char::is_whitespace) {
            return Err(format!(
                "`{}` is not an http(s) URL or a path such as /assets/a.jpg",
                url.chars().take(60).collect::<String>()
            ));
        }
    }
    Ok(urls)
}

/// Checks option values: ≤ 10 pairs of 1–50 character strings.
pub fn parse_options(map: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    if map.len() > 10 {
        return Err("at most 10 options".into());
    }
    for (k, v) in &map {
        check_len(k, 1, 50)?;
        check_len(v, 1, 50)?;
    }
    Ok(map)
}

/// One price as received: amount, currency text and optional compare-at amount.
pub struct PriceInput<'a> {
    /// Minor units.
    pub amount: i64,
    /// Currency code as sent.
    pub currency: &'a str,
    /// Compare-at amount.
    pub compare_at_amount: Option<i64>,
}

/// Checks prices: amounts ≥ 0, known ISO 4217 codes, one price per currency.
pub fn parse_prices(
    prices: &[PriceInput<'_>],
    field: &str,
    errors: &mut Errors,
) -> Vec<(Money, Option<i64>)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, p) in prices.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if p.amount < 0 || p.compare_at_amount.is_some_and(|c| c < 0) {
            errors.add(
                format!("{at}.amount"),
                "negative_amount",
                "amounts must be ≥ 0",
            );
            continue;
        }
        let Some(currency) = parse_currency(p.currency) else {
            errors.add(
                format!("{at}.currency"),
                "invalid_currency",
                "not a known ISO 4217 code",
            );
            continue;
        };
        if !seen.insert(currency) {
            errors.add(
                format!("{at}.currency"),
                "duplicate_currency",
                "one price per currency",
            );
            continue;
        }
        out.push((Money::new(p.amount, currency), p.compare_at_amount));
    }
    out
}

/// Active ISO 4217 codes accepted for prices.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB \
BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD \
FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR \
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR \
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK \
SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES \
VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL";

/// Parses an upper-case ISO 4217 code that is in use.
pub fn parse_currency(code: &str) -> Option<Currency> {
    let currency = Currency::parse(code).ok()?;
    ISO_4217
        .split_ascii_whitespace()
        .any(|c| c == code)
        .then_some(currency)
}

/// Whether a product with these variants has stock.
pub fn in_stock(variants: &[Variant]) -> bool {
    variants.iter().any(|v| v.available > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_allow_only_safe_characters() {
        assert!(Sku::parse("TSHIRT-RED-M").is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn prices_refuse_negative_unknown_and_duplicate_currencies() {
        let input = [
            PriceInput {
                amount: 100,
                currency: "EUR",
                compare_at_amount: None,
            },
            PriceInput {
                amount: -1,
                currency: "USD",
                compare_at_amount: None,
            },
            PriceInput {
                amount: 1,
                currency: "eur",
                compare_at_amount: None,
            },
            PriceInput {
                amount: 1,
                currency: "XYZ",
                compare_at_amount: None,
            },
            PriceInput {
                amount: 1,
                currency: "EUR",
                compare_at_amount: None,
            },
        ];
        let mut errors = Errors::default();
        let prices = parse_prices(&input, "prices", &mut errors);
        assert_eq!(prices.len(), 1);
        let codes: Vec<_> = errors.0.iter().map(|e| e.code.to_string()).collect();
        assert_eq!(
            codes,
            [
                "negative_amount",
                "invalid_currency",
                "invalid_currency",
                "duplicate_currency"
            ]
        );
    }

    #[test]
    fn images_must_be_http_urls() {
        assert!(parse_images(vec!["https://cdn.example.com/a.jpg".into()]).is_ok());
        assert!(parse_images(vec!["javascript:alert(1)".into()]).is_err());
        assert!(parse_images(vec!["https://".into()]).is_err());
        assert!(parse_images(vec!["/assets/demo/1.svg".into()]).is_ok());
        assert!(parse_images(vec!["//evil.example/a.jpg".into()]).is_err());
        assert!(parse_images(vec!["a.jpg".into()]).is_err());
        assert!(parse_images(vec!["http://x".into(); 21]).is_err());
    }
}
