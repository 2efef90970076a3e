//! The index schema and how a product becomes a tantivy document.

use tantivy::TantivyDocument;
use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};

/// Bumped whenever the fields below change; an index of another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 3;

/// Currencies with a price field (`price_eur`, `price_usd`): the minimum variant price in minor
/// units. Prices in other currencies are not searchable.
pub const CURRENCIES: [&str; 2] = ["EUR", "USD"];

/// Tokenizer of the full-text fields: lowercase, English stemming.
const TEXT_TOKENIZER: &str = "en_stem";

/// A product as the index sees it, read from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDoc {
    /// Product id.
    pub id: String,
    /// Title.
    pub title: String,
    /// URL slug.
    pub slug: String,
    /// Description (markdown).
    pub description: String,
    /// Brand, if any.
    pub brand: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Attributes, name → value.
    pub attributes: Vec<(String, String)>,
    /// Category paths from the root, each as its list of category ids.
    pub categories: Vec<Vec<String>>,
    /// Minimum variant price per currency, in minor units.
    pub prices: Vec<(String, u64)>,
    /// Whether any variant can be sold.
    pub in_stock: bool,
    /// Creation time, microseconds since the epoch.
    pub created_at: i64,
}

/// Handles to every field of the index schema.
#[derive(Debug, Clone)]
pub struct Fields {
    /// The schema itself.
    pub schema: Schema,
    /// Product id (raw, stored, fast: the tie-break of every sort order).
    pub id: Field,
    /// Title (full text, stored).
    pub title: Field,
    /// URL slug (stored only), for links.
    pub slug: Field,
    /// Tags (full text).
    pub tags: Field,
    /// Description (full text, stored: the snippet source).
    pub description: Field,
    /// Brand (raw, stored) for filters.
    pub brand: Field,
    /// Brand as a facet (`/Acme`) for counts.
    pub brand_facet: Field,
    /// Every category id on a product's paths (raw) for filters including sub-categories.
    pub category_ids: Field,
    /// Category paths as facets (`/cat_a/cat_b`) for counts.
    pub category: Field,
    /// Attributes as facets (`/colour/red`).
    pub attributes: Field,
    /// One price field per entry of [`CURRENCIES`], same order.
    pub prices: [Field; 2],
    /// 1 when in stock, else 0.
    pub in_stock: Field,
    /// Creation time in microseconds.
    pub created_at: Field,
}

impl Fields {
    /// Builds the schema.
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let text = |stored: bool| {
            let indexing = TextFieldIndexing::default()
                .set_tokenizer(TEXT_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions);
            let options = TextOptions::default().set_indexing_options(indexing);
            if stored {
                options.set_stored()
            } else {
                options
            }
        };
        let id = builder.add_text_field("id", STRING | STORED | FAST);
        let title = builder.add_text_field("title", text(true));
        let slug = builder.add_text_field("slug", STORED);
        let tags = builder.add_text_field("tags", text(false));
        let description = builder.add_text_field("description", text(true));
        let brand = builder.add_text_field("brand", STRING | STORED);
        let brand_facet = builder.add_facet_field("brand_facet", FacetOptions::default());
        let category_ids = builder.add_text_field("category_ids", STRING);
        let category = builder.add_facet_field("category", FacetOptions::default());
        let attributes = builder.add_facet_field("attributes", FacetOptions::default());
        let prices = CURRENCIES.map(|currency| {
            let name = format!("price_{}", currency.to_ascii_lowercase());
            builder.add_u64_field(&name, FAST | STORED | INDEXED)
        });
        let in_stock = builder.add_u64_field("in_stock", FAST | STORED | INDEXED);
        let created_at = builder.add_i64_field("created_at", FAST | STORED);
        Self {
            schema: builder.build(),
            id,
            title,
            slug,
            tags,
            description,
            brand,
            brand_facet,
            category_ids,
            category,
            attributes,
            prices,
            in_stock,
            created_at,
        }
    }

    /// The price field of `currency` (upper case ISO 4217), if it is indexed.
    pub fn price(&self, currency: &str) -> Option<Field> {
        CURRENCIES
            .iter()
            .position(|c| *c == currency)
            .map(|i| self.prices[i])
    }

    /// Name of the price field of `currency`, for fast-field collectors.
    pub fn price_name(&self, currency: &str) -> Option<String> {
        self.price(currency)
            .map(|f| self.schema.get_field_name(f).to_owned())
    }

    /// The document of a product.
    pub fn document(&self, product: &ProductDoc) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_text(self.id, &product.id);
        doc.add_text(self.title, &product.title);
        doc.add_text(self.slug, &product.slug);
        for tag in &product.tags {
            doc.add_text(self.tags, tag);
        }
        doc.add_text(self.description, &product.description);
        if let Some(brand) = product.brand.as_deref().filter(|b| !b.is_empty()) {
            doc.add_text(self.brand, brand);
            doc.add_facet(self.brand_facet, Facet::from_path([brand]));
        }
        let mut ids: Vec<&str> = product
            .categories
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            doc.add_text(self.category_ids, id);
        }
        for path in product.categories.iter().filter(|p| !p.is_empty()) {
            doc.add_facet(self.category, Facet::from_path(path));
        }
        for (name, value) in &product.attributes {
            if !name.is_empty() && !value.is_empty() {
                doc.add_facet(self.attributes, Facet::from_path([name, value]));
            }
        }
        for (currency, amount) in &product.prices {
            if let Some(field) = self.price(currency) {
                doc.add_u64(field, *amount);
            }
        }
        doc.add_u64(self.in_stock, u64::from(product.in_stock));
        doc.add_i64(self.created_at, product.created_at);
        doc
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::new()
    }
}
