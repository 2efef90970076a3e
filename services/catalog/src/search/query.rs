//! Turning a search request into a tantivy query, running it, and shaping the results.

use std::collections::BTreeMap;
use std::ops::Bound;

use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue, SortByString};
use tantivy::collector::{Collector, Count, FacetCollector, FacetCounts, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhrasePrefixQuery,
    Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Facet, Field, IndexRecordOption, Value};
use tantivy::{DocAddress, Order, Searcher, TantivyDocument, Term};

use super::SearchError;
use super::buckets::{BUCKET_BOUNDS, PriceBuckets};
use super::index::SearchIndex;
use super::snippets::Snippets;

/// Field boosts: title counts most, then tags, then description.
const BOOSTS: [f32; 3] = [3.0, 2.0, 1.0];
/// Weight of a one-edit match relative to an exact match on the same field.
const FUZZY_WEIGHT: f32 = 0.3;
/// Words this long or longer also match with one typo.
pub(crate) const FUZZY_MIN_CHARS: usize = 5;
/// Most suggestions returned.
pub const MAX_SUGGESTIONS: usize = 10;

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Best match first (BM25 with field boosts).
    #[default]
    Relevance,
    /// Cheapest first, in the request's currency.
    PriceAsc,
    /// Most expensive first.
    PriceDesc,
    /// Most recently created first.
    Newest,
}

/// A validated search request.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Free text; empty matches every product.
    pub q: String,
    /// Category id; sub-categories included.
    pub category: Option<String>,
    /// The category's path of ids from the root (for drill-down facets), when known.
    pub category_path: Option<Vec<String>>,
    /// Exact brand.
    pub brand: Option<String>,
    /// Lowest price in minor units, inclusive.
    pub min_price: Option<u64>,
    /// Highest price in minor units, inclusive.
    pub max_price: Option<u64>,
    /// Currency of prices, filters and sorting (one of [`super::CURRENCIES`]).
    pub currency: String,
    /// Only products in stock (`true`) or out of stock (`false`).
    pub in_stock: Option<bool>,
    /// Order of the hits.
    pub sort: Sort,
    /// Hits per page.
    pub limit: usize,
    /// Hits to skip (from the cursor).
    pub offset: usize,
}

/// One matching product.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// Product id.
    pub id: String,
    /// Title.
    pub title: String,
    /// URL slug.
    pub slug: String,
    /// Brand.
    pub brand: Option<String>,
    /// Minimum variant price in the request's currency, minor units.
    pub price: Option<u64>,
    /// Whether it can be bought now.
    pub in_stock: bool,
    /// Description (or title) excerpt, HTML-escaped, matches in `<mark>…</mark>`.
    pub snippet: String,
}

/// Matches per price range `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceBucket {
    /// Lower bound, minor units, inclusive.
    pub from: u64,
    /// Upper bound, exclusive; `None` for the last bucket.
    pub to: Option<u64>,
    /// Matching products in the range.
    pub count: u64,
}

/// Facet counts over all matches (not just the page).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    /// Matches per child category of the filtered category (or per top-level category).
    pub category: BTreeMap<String, u64>,
    /// Matches per brand.
    pub brand: BTreeMap<String, u64>,
    /// Matches per price bucket.
    pub price: Vec<PriceBucket>,
    /// Matches per attribute name and value.
    pub attributes: BTreeMap<String, BTreeMap<String, u64>>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    /// The page's hits.
    pub hits: Vec<SearchHit>,
    /// All matches.
    pub total: u64,
    /// Facet counts.
    pub facets: Facets,
    /// Offset of the next page, if any.
    pub next_offset: Option<usize>,
}

impl SearchIndex {
    /// Runs `request` against the current searcher.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError> {
        let searcher = self.reader.searcher();
        let words = self.tokens(self.fields.title, &request.q)?;
        let query = self.filtered(self.text_query(&words), request);
        let range = request.offset..request.offset + request.limit.max(1);
        let top = TopDocs::for_doc_range(range);
        // Ties are broken by product id, so the order (and the pages) depend only on the data.
        let by_id = (SortByString::for_field("id"), Order::Asc);
        let price = self.fields.price_name(&request.currency);
        let (hits, total, facets) = match (request.sort, price) {
            (Sort::PriceAsc, Some(name)) => {
                let key = (SortByStaticFastValue::<u64>::for_field(name), Order::Asc);
                self.collect(&searcher, &*query, top.order_by((key, by_id)), request)?
            }
            (Sort::PriceDesc, Some(name)) => {
                let key = (SortByStaticFastValue::<u64>::for_field(name), Order::Desc);
                self.collect(&searcher, &*query, top.order_by((key, by_id)), request)?
            }
            (Sort::Newest, _) => {
                let key = (
                    SortByStaticFastValue::<i64>::for_field("created_at"),
                    Order::Desc,
                );
                self.collect(&searcher, &*query, top.order_by((key, by_id)), request)?
            }
            _ => {
                let key = (SortBySimilarityScore, Order::Desc);
                self.collect(&searcher, &*query, top.order_by((key, by_id)), request)?
            }
        };
        let snippets = Snippets::new(&searcher, &words, &self.fields)?;
        let hits = hits
            .into_iter()
            .map(|address| {
                let doc: TantivyDocument = searcher.doc(address)?;
                Ok(self.hit(&doc, &request.currency, &snippets))
            })
            .collect::<Result<Vec<_>, SearchError>>()?;
        let next = request.offset + hits.len();
        let next_offset = (hits.len() == request.limit && (next as u64) < total).then_some(next);
        Ok(SearchResults {
            hits,
            total,
            facets,
            next_offset,
        })
    }

    /// Titles starting with what was typed: the last word is a prefix, the ones before exact.
    pub fn suggest(&self, q: &str) -> Result<Vec<String>, SearchError> {
        let terms: Vec<Term> = self
            .tokens(self.fields.title, q)?
            .into_iter()
            .map(|(text, _)| Term::from_field_text(self.fields.title, &text))
            .collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let query = PhrasePrefixQuery::new(terms);
        let top = TopDocs::with_limit(MAX_SUGGESTIONS * 3).order_by_score();
        let mut titles: Vec<String> = Vec::new();
        for (_, address) in searcher.search(&query, &top)? {
            let doc: TantivyDocument = searcher.doc(address)?;
            let title = text_of(&doc, self.fields.title).unwrap_or_default();
            if !title.is_empty() && !titles.contains(&title) {
                titles.push(title);
            }
            if titles.len() == MAX_SUGGESTIONS {
                break;
            }
        }
        Ok(titles)
    }

    /// Analyzed words of `text` as `field` indexes them, each with its length as typed.
    fn tokens(&self, field: Field, text: &str) -> Result<Vec<(String, usize)>, SearchError> {
        let mut analyzer = self.index.tokenizer_for_field(field)?;
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while let Some(token) = stream.next() {
            let typed = text
                .get(token.offset_from..token.offset_to)
                .map_or(token.text.len(), |s| s.chars().count());
            tokens.push((token.text.clone(), typed));
        }
        Ok(tokens)
    }

    /// Every word must match title, tags or description, exactly or (if long) with one typo.
    fn text_query(&self, words: &[(String, usize)]) -> Box<dyn Query> {
        let fields = [self.fields.title, self.fields.tags, self.fields.description];
        if words.is_empty() {
            return Box::new(AllQuery);
        }
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (word, typed) in words {
            let typed = *typed;
            let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, boost) in fields.iter().zip(BOOSTS) {
                let term = Term::from_field_text(*field, word);
                let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(exact), boost)),
                ));
                if typed >= FUZZY_MIN_CHARS {
                    let fuzzy = FuzzyTermQuery::new(term, 1, true);
                    let weight = boost * FUZZY_WEIGHT;
                    should.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(fuzzy), weight)),
                    ));
                }
            }
            must.push((Occur::Must, Box::new(BooleanQuery::new(should))));
        }
        Box::new(BooleanQuery::new(must))
    }

    /// `text` restricted by the request's filters, which add nothing to the score.
    fn filtered(&self, text: Box<dyn Query>, request: &SearchRequest) -> Box<dyn Query> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
        let mut filter = |query: Box<dyn Query>| {
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0))));
        };
        if let Some(category) = &request.category {
            let term = Term::from_field_text(f.category_ids, category);
            filter(Box::new(TermQuery::new(term, IndexRecordOption::Basic)));
        }
        if let Some(brand) = &request.brand {
            let term = Term::from_field_text(f.brand, brand);
            filter(Box::new(TermQuery::new(term, IndexRecordOption::Basic)));
        }
        if let Some(in_stock) = request.in_stock {
            let term = Term::from_field_u64(f.in_stock, u64::from(in_stock));
            filter(Box::new(TermQuery::new(term, IndexRecordOption::Basic)));
        }
        let price = f.price(&request.currency);
        if let (Some(field), true) = (
            price,
            request.min_price.is_some() || request.max_price.is_some(),
        ) {
            let bound = |v: Option<u64>| {
                v.map_or(Bound::Unbounded, |v| {
                    Bound::Included(Term::from_field_u64(field, v))
                })
            };
            let lower = match bound(request.min_price) {
                Bound::Unbounded => Bound::Included(Term::from_field_u64(field, 0)),
                b => b,
            };
            filter(Box::new(RangeQuery::new(lower, bound(request.max_price))));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// One pass over the matches: the page (by `top`), the total and every facet count.
    fn collect<K, C>(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        top: C,
        request: &SearchRequest,
    ) -> Result<(Vec<DocAddress>, u64, Facets), SearchError>
    where
        C: Collector<Fruit = Vec<(K, DocAddress)>>,
    {
        let parent = request
            .category_path
            .as_ref()
            .map_or_else(Facet::root, Facet::from_path);
        let mut category = FacetCollector::for_field("category");
        category.add_facet(parent.clone());
        let mut brand = FacetCollector::for_field("brand_facet");
        brand.add_facet(Facet::root());
        let names = self.attribute_names();
        let mut attributes = FacetCollector::for_field("attributes");
        for name in &names {
            attributes.add_facet(Facet::from_path([name]));
        }
        let price_field = self
            .fields
            .price_name(&request.currency)
            .unwrap_or_default();
        let collector = (
            top,
            Count,
            (category, brand, attributes),
            PriceBuckets::new(price_field),
        );
        let (page, total, (category, brand, attributes), buckets) =
            searcher.search(query, &collector)?;
        let mut facets = Facets {
            category: children(&category, &parent),
            brand: children(&brand, &Facet::root()),
            ..Facets::default()
        };
        for name in names {
            let values = children(&attributes, &Facet::from_path([&name]));
            if !values.is_empty() {
                facets.attributes.insert(name, values);
            }
        }
        facets.price = BUCKET_BOUNDS
            .iter()
            .enumerate()
            .map(|(i, from)| PriceBucket {
                from: *from,
                to: BUCKET_BOUNDS.get(i + 1).copied(),
                count: buckets.get(i).copied().unwrap_or(0),
            })
            .collect();
        let page = page.into_iter().map(|(_, address)| address).collect();
        Ok((page, total as u64, facets))
    }

    fn hit(&self, doc: &TantivyDocument, currency: &str, snippets: &Snippets) -> SearchHit {
        let f = &self.fields;
        let title = text_of(doc, f.title).unwrap_or_default();
        let description = text_of(doc, f.description).unwrap_or_default();
        SearchHit {
            id: text_of(doc, f.id).unwrap_or_default(),
            snippet: snippets.render(&title, &description),
            title,
            slug: text_of(doc, f.slug).unwrap_or_default(),
            brand: text_of(doc, f.brand),
            price: f
                .price(currency)
                .and_then(|field| doc.get_first(field))
                .and_then(|v| v.as_u64()),
            in_stock: doc.get_first(f.in_stock).and_then(|v| v.as_u64()) == Some(1),
        }
    }
}

fn text_of(doc: &TantivyDocument, field: Field) -> Option<String> {
    doc.get_first(field)
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// Counts of the direct children of `parent`, keyed by their last path segment.
fn children(counts: &FacetCounts, parent: &Facet) -> BTreeMap<String, u64> {
    counts
        .get(parent.clone())
        .filter_map(|(facet, count)| {
            facet
                .to_path()
                .last()
                .map(|name| ((*name).to_owned(), count))
        })
        .collect()
}
