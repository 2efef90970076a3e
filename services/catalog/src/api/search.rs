//! `GET /api/v1/search` and `GET /api/v1/search/suggest`: product search over the index.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use mercato_kernel::error::{FieldError, Problem};
use mercato_kernel::pagination::{DEFAULT_LIMIT, MAX_LIMIT};
use mercato_kernel::{ApiError, Json, Query};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::search::{CURRENCIES, SearchError, SearchHit, SearchRequest, SearchResults, Sort};

/// Longest query text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Deepest page reachable with cursors (offset), to keep each query cheap.
pub const MAX_OFFSET: usize = 10_000;
/// Longest filter value (category id, brand), in characters.
const MAX_FILTER_CHARS: usize = 200;

/// Query parameters of a search.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Free text (up to 200 characters); empty or absent matches every product.
    pub q: Option<String>,
    /// Category id; products of its sub-categories match too.
    pub category: Option<String>,
    /// Exact brand.
    pub brand: Option<String>,
    /// Lowest price in minor units (inclusive).
    pub min_price: Option<u64>,
    /// Highest price in minor units (inclusive).
    pub max_price: Option<u64>,
    /// Currency of prices, price filters and price sorting: EUR (default) or USD.
    pub currency: Option<String>,
    /// Only products in stock (`true`) or out of stock (`false`).
    pub in_stock: Option<bool>,
    /// `relevance` (default), `price_asc`, `price_desc` or `newest`.
    pub sort: Option<String>,
    /// Hits per page, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub starting_after: Option<String>,
}

/// A price in minor units.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceView {
    /// Minor units.
    pub amount: u64,
    /// ISO 4217 code.
    pub currency: String,
}

/// One matching product.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchHitView {
    /// Product id.
    pub id: String,
    /// Title.
    pub title: String,
    /// URL slug: the storefront's `/products/{slug}`.
    pub slug: String,
    /// Brand.
    pub brand: Option<String>,
    /// Lowest variant price in the requested currency.
    pub price: Option<PriceView>,
    /// Whether it can be bought now.
    pub in_stock: bool,
    /// HTML excerpt with matches in `<mark>…</mark>` (everything else escaped).
    pub snippet: String,
}

/// Matches per price range `[from, to)` in minor units.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceBucketView {
    /// Lower bound, inclusive.
    pub from: u64,
    /// Upper bound, exclusive; absent for the last bucket.
    pub to: Option<u64>,
    /// Matching products.
    pub count: u64,
}

/// Facet counts over every match.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FacetsView {
    /// Matches per sub-category of the filtered category (top-level ones without a filter).
    pub category: BTreeMap<String, u64>,
    /// Matches per brand.
    pub brand: BTreeMap<String, u64>,
    /// Matches per price bucket.
    pub price: Vec<PriceBucketView>,
    /// Matches per attribute name and value.
    pub attributes: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A page of search results.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    /// The hits of this page.
    pub hits: Vec<SearchHitView>,
    /// All matching products.
    pub total: u64,
    /// Facet counts.
    pub facets: FacetsView,
    /// Pass as `starting_after` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of suggestions.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestParams {
    /// What was typed so far (up to 200 characters).
    pub q: Option<String>,
}

/// Titles completing what was typed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuggestResponse {
    /// Up to 10 product titles.
    pub suggestions: Vec<String>,
}

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/search", get(search_products))
        .route("/api/v1/search/suggest", get(suggest_titles))
}

/// Searches active products: full text with typo tolerance, filters, facets, sorting.
#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "search",
    params(SearchParams),
    responses(
        (status = 200, description = "A page of hits with facet counts", body = SearchResponse),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search_products(
    State(state): State<AppState>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchResponse>, ApiError> {
    let mut request = parse_search(params)?;
    if let Some(category) = &request.category {
        request.category_path = state
            .search
            .category_path(category)
            .await
            .map_err(index_error)?;
    }
    let currency = request.currency.clone();
    let results = state.search.search(request).await.map_err(index_error)?;
    Ok(Json(to_response(results, &currency)))
}

/// Suggests product titles for search-as-you-type (the last word is a prefix).
#[utoipa::path(
    get,
    path = "/api/v1/search/suggest",
    tag = "search",
    params(SuggestParams),
    responses(
        (status = 200, description = "Matching titles", body = SuggestResponse),
        (status = 422, description = "Query too long", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn suggest_titles(
    State(state): State<AppState>,
    Query(params): Query<SuggestParams>,
) -> Result<Json<SuggestResponse>, ApiError> {
    let q = parse_q(params.q)?;
    let suggestions = state.search.suggest(q).await.map_err(index_error)?;
    Ok(Json(SuggestResponse { suggestions }))
}

fn index_error(error: SearchError) -> ApiError {
    match error {
        SearchError::Db(sqlx::Error::PoolTimedOut) => {
            ApiError::unavailable("database is busy").with_retry_after(1)
        }
        other => ApiError::internal(other),
    }
}

fn parse_q(q: Option<String>) -> Result<String, ApiError> {
    let q = q.unwrap_or_default();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid_field(
            "q",
            "too_long",
            format!("q must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(q)
}

/// Checks every parameter and collects all problems at once.
pub fn parse_search(params: SearchParams) -> Result<SearchRequest, ApiError> {
    let mut errors = Vec::new();
    let q = parse_q(params.q.clone()).unwrap_or_else(|e| {
        errors.extend(e.field_errors().iter().cloned());
        String::new()
    });
    let mut filter = |name: &str, value: Option<String>| {
        let value = value.filter(|v| !v.is_empty())?;
        if value.chars().count() > MAX_FILTER_CHARS {
            errors.push(FieldError::new(
                name,
                "too_long",
                format!("{name} is too long"),
            ));
            return None;
        }
        Some(value)
    };
    let category = filter("category", params.category);
    let brand = filter("brand", params.brand);
    let currency = params
        .currency
        .unwrap_or_else(|| "EUR".to_owned())
        .to_ascii_uppercase();
    if !CURRENCIES.contains(&currency.as_str()) {
        let message = format!("currency must be one of {}", CURRENCIES.join(", "));
        errors.push(FieldError::new("currency", "unsupported_currency", message));
    }
    if let (Some(min), Some(max)) = (params.min_price, params.max_price)
        && min > max
    {
        let message = "min_price must not exceed max_price";
        errors.push(FieldError::new("min_price", "invalid_range", message));
    }
    let sort = match params.sort.as_deref().unwrap_or("relevance") {
        "relevance" => Sort::Relevance,
        "price_asc" => Sort::PriceAsc,
        "price_desc" => Sort::PriceDesc,
        "newest" => Sort::Newest,
        _ => {
            let message = "sort must be relevance, price_asc, price_desc or newest";
            errors.push(FieldError::new("sort", "invalid_sort", message));
            Sort::Relevance
        }
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        let message = format!("limit must be between 1 and {MAX_LIMIT}");
        errors.push(FieldError::new("limit", "out_of_range", message));
    }
    let offset = match params.starting_after.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(cursor) => decode_cursor(cursor).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "starting_after",
                "invalid_cursor",
                "cursor is not valid",
            ));
            0
        }),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(SearchRequest {
        q,
        category,
        category_path: None,
        brand,
        min_price: params.min_price,
        max_price: params.max_price,
        currency,
        in_stock: params.in_stock,
        sort,
        limit: limit as usize,
        offset,
    })
}

/// Opaque cursor of a result offset. Pages do not overlap or skip while the index is unchanged
/// (ties are broken by document order, fixed for a given index state).
pub fn encode_cursor(offset: usize) -> String {
    format!("sc1_{:x}", offset ^ 0x5eed)
}

/// The offset of a cursor from [`encode_cursor`], if it is one and within [`MAX_OFFSET`].
pub fn decode_cursor(cursor: &str) -> Option<usize> {
    let hex = cursor.strip_prefix("sc1_")?;
    if hex.len() > 16 {
        return None;
    }
    let offset = usize::from_str_radix(hex, 16).ok()? ^ 0x5eed;
    (offset <= MAX_OFFSET).then_some(offset)
}

fn to_response(results: SearchResults, currency: &str) -> SearchResponse {
    let hit = |h: SearchHit| SearchHitView {
        price: h.price.map(|amount| PriceView {
            amount,
            currency: currency.to_owned(),
        }),
        id: h.id,
        title: h.title,
        slug: h.slug,
        brand: h.brand,
        in_stock: h.in_stock,
        snippet: h.snippet,
    };
    let facets = results.facets;
    SearchResponse {
        hits: results.hits.into_iter().map(hit).collect(),
        total: results.total,
        facets: FacetsView {
            category: facets.category,
            brand: facets.brand,
            price: facets
                .price
                .into_iter()
                .map(|b| PriceBucketView {
                    from: b.from,
                    to: b.to,
                    count: b.count,
                })
                .collect(),
            attributes: facets.attributes,
        },
        next_cursor: results
            .next_offset
            .filter(|o| *o <= MAX_OFFSET)
            .map(encode_cursor),
    }
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(search_products, suggest_titles),
    components(schemas(
        SearchResponse,
        SearchHitView,
        PriceView,
        FacetsView,
        PriceBucketView,
        SuggestResponse
    ))
)]
pub struct Doc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for offset in [0, 1, 20, MAX_OFFSET] {
            assert_eq!(decode_cursor(&encode_cursor(offset)), Some(offset));
        }
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(decode_cursor("sc1_zz"), None);
        assert_eq!(decode_cursor(&encode_cursor(MAX_OFFSET + 1)), None);
    }

    #[test]
    fn bad_parameters_are_all_reported() {
        let params = SearchParams {
            q: Some("x".repeat(201)),
            currency: Some("GBP".into()),
            sort: Some("cheapest".into()),
            limit: Some(0),
            min_price: Some(10),
            max_price: Some(5),
            ..SearchParams::default()
        };
        let error = parse_search(params).unwrap_err();
        assert_eq!(error.status(), 422);
        assert_eq!(error.field_errors().len(), 5);
    }
}
