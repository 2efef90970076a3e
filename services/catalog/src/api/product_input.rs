//! Wire types of product and variant writes, and their parsing into domain drafts.

use std::collections::BTreeMap;

use mercato_kernel::error::ApiError;
use mercato_kernel::id::parse_id;
use serde::{Deserialize, Deserializer};

use crate::domain::product::{
    self, Errors, MAX_CATEGORIES, MAX_DESCRIPTION, MAX_VARIANTS, PriceInput, ProductDraft,
    ProductStatus, Sku, Variant, VariantDraft,
};
use crate::domain::{Slug, check_len};

/// Lets a JSON `null` mean "clear" and an absent field mean "keep".
fn double<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A price as sent: `{"amount": 1999, "currency": "EUR", "compare_at_amount": 2499}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceRequest {
    /// Minor units, ≥ 0.
    pub amount: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// "Was" price in minor units, ≥ 0.
    pub compare_at_amount: Option<i64>,
}

/// A variant to create (`sku` and `prices` required) or change (all optional).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantRequest {
    /// Unique SKU.
    pub sku: Option<String>,
    /// Option values, e.g. `{"size": "M"}`.
    pub options: Option<BTreeMap<String, String>>,
    /// One price per currency.
    pub prices: Option<Vec<PriceRequest>>,
    /// Weight in grams, ≥ 0.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<i64>)]
    pub weight_grams: Option<Option<i64>>,
    /// Barcode.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub barcode: Option<Option<String>>,
}

/// A product to create (`title` required) or change (all optional; `null` clears).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductRequest {
    /// Title, ≤ 200 characters.
    pub title: Option<String>,
    /// URL slug; generated from the title when absent.
    pub slug: Option<String>,
    /// Markdown, ≤ 100 KB.
    pub description: Option<String>,
    /// `draft` (default), `active` or `archived`.
    pub status: Option<ProductStatus>,
    /// Brand.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub brand: Option<Option<String>>,
    /// ≤ 50 tags.
    pub tags: Option<Vec<String>>,
    /// ≤ 50 attributes.
    pub attributes: Option<BTreeMap<String, String>>,
    /// ≤ 20 images: http(s) URLs, or paths on the shop's own host (`/assets/…`).
    pub images: Option<Vec<String>>,
    /// SEO title.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub seo_title: Option<Option<String>>,
    /// SEO description.
    #[serde(default, deserialize_with = "double")]
    #[schema(value_type = Option<String>)]
    pub seo_description: Option<Option<String>>,
    /// Categories (`cat_…`).
    pub category_ids: Option<Vec<String>>,
    /// Variants, on create only (≤ 100).
    pub variants: Option<Vec<VariantRequest>>,
}

fn optional_text(
    errors: &mut Errors,
    field: &str,
    value: Option<Option<String>>,
    max: usize,
) -> Option<Option<String>> {
    match value {
        Some(Some(text)) => errors.check(
            field,
            check_len(text.trim(), 1, max).map(|t| Some(t.to_owned())),
        ),
        other => other,
    }
}

impl ProductRequest {
    /// Parses every field, listing all invalid ones at once.
    pub fn parse(self, creating: bool) -> Result<ProductDraft, ApiError> {
        let mut e = Errors::default();
        let mut draft = ProductDraft {
            title: self
                .title
                .and_then(|t| e.check("title", product::parse_title(&t))),
            slug: self.slug.and_then(|s| e.check("slug", Slug::parse(&s))),
            status: self.status,
            tags: self
                .tags
                .and_then(|t| e.check("tags", product::parse_tags(t))),
            attributes: self
                .attributes
                .and_then(|a| e.check("attributes", product::parse_attributes(a))),
            images: self
                .images
                .and_then(|i| e.check("images", product::parse_images(i))),
            brand: optional_text(&mut e, "brand", self.brand, 100),
            seo_title: optional_text(&mut e, "seo_title", self.seo_title, 200),
            seo_description: optional_text(&mut e, "seo_description", self.seo_description, 500),
            ..ProductDraft::default()
        };
        if creating && draft.title.is_none() && !e.0.iter().any(|f| f.field == "title") {
            e.add("title", "required", "a title is required");
        }
        if let Some(text) = self.description {
            if text.len() > MAX_DESCRIPTION {
                e.add("description", "too_long", "at most 100 KB");
            }
            draft.description = Some(text);
        }
        draft.category_ids = self.category_ids.map(|ids| parse_category_ids(&mut e, ids));
        match (self.variants, creating) {
            (Some(_), false) => e.add(
                "variants",
                "read_only",
                "change variants through their own routes",
            ),
            (Some(v), true) if v.len() > MAX_VARIANTS => e.add(
                "variants",
                "too_many",
                format!("at most {MAX_VARIANTS} variants"),
            ),
            (Some(v), true) => {
                for (i, variant) in v.into_iter().enumerate() {
                    if let Some(d) = variant.parse_into(&mut e, &format!("variants[{i}]"), None) {
                        draft.variants.push(d);
                    }
                }
            }
            (None, _) => {}
        }
        if e.0.is_empty() {
            Ok(draft)
        } else {
            Err(ApiError::validation(e.0))
        }
    }
}

fn parse_category_ids(e: &mut Errors, ids: Vec<String>) -> Vec<String> {
    if ids.len() > MAX_CATEGORIES {
        e.add(
            "category_ids",
            "too_many",
            format!("at most {MAX_CATEGORIES} categories"),
        );
    }
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if parse_id("cat", &id, "category_ids").is_err() {
            e.add(
                "category_ids",
                "invalid_id",
                "expected ids starting with `cat_`",
            );
        } else if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

impl VariantRequest {
    /// Parses a variant; `base` supplies the fields a change leaves out.
    pub fn parse(self, base: Option<&Variant>) -> Result<VariantDraft, ApiError> {
        let mut e = Errors::default();
        let draft = self.parse_into(&mut e, "", base);
        match draft {
            Some(d) if e.0.is_empty() => Ok(d),
            _ => Err(ApiError::validation(e.0)),
        }
    }

    fn parse_into(self, e: &mut Errors, at: &str, base: Option<&Variant>) -> Option<VariantDraft> {
        let field = |name: &str| {
            if at.is_empty() {
                name.to_owned()
            } else {
                format!("{at}.{name}")
            }
        };
        let sku = match (self.sku, base) {
            (Some(s), _) => e.check(&field("sku"), Sku::parse(&s)),
            (None, Some(b)) => Sku::parse(&b.sku).ok(),
            (None, None) => {
                e.add(field("sku"), "required", "a sku is required");
                None
            }
        };
        let options = match self.options {
            Some(o) => e.check(&field("options"), product::parse_options(o)),
            None => Some(base.map(|b| b.options.clone()).unwrap_or_default()),
        };
        let prices = match (self.prices, base) {
            (Some(p), _) => {
                let input: Vec<_> = p
                    .iter()
                    .map(|p| PriceInput {
                        amount: p.amount,
                        currency: &p.currency,
                        compare_at_amount: p.compare_at_amount,
                    })
                    .collect();
                product::parse_prices(&input, &field("prices"), e)
            }
            (None, Some(b)) => {
                let input: Vec<_> = b
                    .prices
                    .iter()
                    .map(|p| PriceInput {
                        amount: p.amount,
                        currency: &p.currency,
                        compare_at_amount: p.compare_at_amount,
                    })
                    .collect();
                product::parse_prices(&input, &field("prices"), e)
            }
            (None, None) => Vec::new(),
        };
        let weight_grams = self
            .weight_grams
            .unwrap_or_else(|| base.and_then(|b| b.weight_grams));
        if weight_grams.is_some_and(|w| w < 0) {
            e.add(field("weight_grams"), "negative", "weight must be ≥ 0");
        }
        let barcode = match self.barcode {
            Some(Some(b)) => e.check(
                &field("barcode"),
                check_len(&b, 1, 64).map(|b| Some(b.to_owned())),
            )?,
            Some(None) => None,
            None => base.and_then(|b| b.barcode.clone()),
        };
        Some(VariantDraft {
            sku: sku?,
            options: options?,
            prices,
            weight_grams,
            barcode,
        })
    }
}
