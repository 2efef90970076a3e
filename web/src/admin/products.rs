//! Products and their variants: list, create, edit, images, publish, archive, delete.
//!
//! Product and variant forms are read as raw pairs: categories are check boxes sharing one
//! name, and prices are one field per currency (`price.EUR`).

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Pairs, Staff, field, fields, flat_categories, list, parse_amount, submit};
use crate::api::Call;
use crate::session::{Form, Visitor};
use crate::shop::{query_string, segment};
use crate::{Page, WebState, see_other, status_for};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/catalog/_variant_fields.html",
        include_str!("../../templates/admin/catalog/_variant_fields.html"),
    ),
    (
        "admin/catalog/products.html",
        include_str!("../../templates/admin/catalog/products.html"),
    ),
    (
        "admin/catalog/product.html",
        include_str!("../../templates/admin/catalog/product.html"),
    ),
];

/// Routes of these pages.
pub(crate) fn routes() -> axum::Router<WebState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/products", get(products).post(create))
        .route("/admin/products/{id}", get(product).post(update))
        .route("/admin/products/{id}/status", post(set_status))
        .route("/admin/products/{id}/delete", post(delete))
        .route("/admin/products/{id}/variants", post(add_variant))
        .route(
            "/admin/products/{id}/variants/{variant}",
            post(update_variant),
        )
        .route(
            "/admin/products/{id}/variants/{variant}/delete",
            post(delete_variant),
        )
}

/// Statuses a product can have, in the order the filter offers them.
const STATUSES: &[&str] = &["draft", "active", "archived"];

/// Query of the product list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ProductQuery {
    q: String,
    status: String,
    starting_after: String,
}

/// An optional text field: empty clears it.
fn text_or_null(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::from(text)
    }
}

/// `size=M, color=red` as `{"size": "M", "color": "red"}`.
fn parse_options(text: &str) -> Result<Map<String, Value>, String> {
    let mut options = Map::new();
    for part in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Some((name, value)) = part.split_once('=') else {
            return Err(format!("Options are name=value pairs; “{part}” is not."));
        };
        options.insert(name.trim().to_owned(), Value::from(value.trim()));
    }
    Ok(options)
}

/// A price in major units as an API price, with an optional "was" price.
fn price(currency: &str, amount: &str, compare_at: &str) -> Result<Value, String> {
    let currency = currency.trim().to_ascii_uppercase();
    let amount = parse_amount(amount)
        .ok_or_else(|| format!("Enter the {currency} price in major units, e.g. 19.99."))?;
    let mut price = json!({ "amount": amount, "currency": currency });
    if !compare_at.trim().is_empty() {
        let was = parse_amount(compare_at)
            .ok_or_else(|| format!("The {currency} “was” price must be an amount, e.g. 24.99."))?;
        price["compare_at_amount"] = Value::from(was);
    }
    Ok(price)
}

fn weight(text: &str) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    text.parse::<i64>()
        .ok()
        .filter(|g| *g >= 0)
        .map(Value::from)
        .ok_or_else(|| "The weight is a whole number of grams.".to_owned())
}

/// The product fields of the edit form, as a catalog PATCH.
fn product_patch(pairs: &Pairs) -> Value {
    let tags: Vec<&str> = field(pairs, "tags")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let images: Vec<&str> = field(pairs, "images")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let categories: Vec<&str> = fields(pairs, "category_ids").collect();
    let mut patch = json!({
        "title": field(pairs, "title"),
        "description": field(pairs, "description"),
        "brand": text_or_null(field(pairs, "brand")),
        "tags": tags,
        "images": images,
        "category_ids": categories,
        "seo_title": text_or_null(field(pairs, "seo_title")),
        "seo_description": text_or_null(field(pairs, "seo_description")),
    });
    // A slug cannot be cleared; left empty, a new product's comes from its title.
    let slug = field(pairs, "slug");
    if !slug.is_empty() {
        patch["slug"] = Value::from(slug);
    }
    patch
}

/// The first variant of a new product, from the create form.
fn first_variant(pairs: &Pairs) -> Result<Value, String> {
    Ok(json!({
        "sku": field(pairs, "sku"),
        "options": parse_options(field(pairs, "options"))?,
        "prices": [price(field(pairs, "currency"), field(pairs, "price"), field(pairs, "compare_at"))?],
        "weight_grams": weight(field(pairs, "weight_grams"))?,
    }))
}

async fn categories(state: &WebState, visitor: &Visitor) -> Vec<Value> {
    let tree = Call::get("/api/v1/categories")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    flat_categories(&tree.body)
}

async fn products_page(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    query: &ProductQuery,
    error: Option<String>,
) -> Response {
    let answer = Call::get(format!(
        "/api/v1/products?{}",
        query_string(&[
            ("limit", "50"),
            ("q", query.q.trim()),
            ("status", &query.status),
            ("starting_after", &query.starting_after),
        ])
    ))
    .for_visitor(visitor)
    .send(&state.api)
    .await;
    let error = error.or_else(|| (!answer.ok()).then(|| answer.message()));
    let status = status_for(&error);
    Page::render(
        state,
        visitor,
        "admin/catalog/products.html",
        json!({
            "me": me,
            "products": list(&answer.body),
            "next": answer.body["next_cursor"].as_str().map(|after| query_string(&[
                ("q", query.q.trim()),
                ("status", &query.status),
                ("starting_after", after),
            ])),
            "q": query.q,
            "status": query.status,
            "statuses": STATUSES,
            "categories": categories(state, visitor).await,
            "error": error,
        }),
    )
    .with_status(status)
    .into_response()
}

pub(crate) async fn products(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Query(query): Query<ProductQuery>,
) -> Response {
    products_page(&state, &visitor, &me, &query, None).await
}

pub(crate) async fn create(
    State(state): State<WebState>,
    Staff(me): Staff,
    form: Form<Pairs>,
) -> Response {
    let Form { visitor, fields } = form;
    let variant = match first_variant(&fields) {
        Ok(variant) => variant,
        Err(error) => {
            return products_page(&state, &visitor, &me, &ProductQuery::default(), Some(error))
                .await;
        }
    };
    let mut body = product_patch(&fields);
    body["status"] = Value::from("draft");
    body["variants"] = json!([variant]);
    let answer = Call::new(Method::POST, "/api/v1/products")
        .json(body)
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        let error = Some(answer.message());
        return products_page(&state, &visitor, &me, &ProductQuery::default(), error).await;
    }
    match answer.body["id"].as_str() {
        Some(id) => see_other(&format!("/admin/products/{}", segment(id)), Vec::new()),
        None => see_other("/admin/products", Vec::new()),
    }
}

async fn product_page(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    id: &str,
    error: Option<String>,
) -> Response {
    let answer = Call::get(format!("/api/v1/products/{}", segment(id)))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        return Page::error(state, visitor, 404, "There is no such product.").into_response();
    }
    let status = status_for(&error);
    Page::render(
        state,
        visitor,
        "admin/catalog/product.html",
        json!({
            "me": me,
            "product": answer.body,
            "statuses": STATUSES,
            "categories": categories(state, visitor).await,
            "error": error,
        }),
    )
    .with_status(status)
    .into_response()
}

pub(crate) async fn product(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    product_page(&state, &visitor, &me, &id, None).await
}

/// Sends `call`; back to the product page, with the API's complaint if it refused.
async fn apply(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    id: &str,
    call: Result<Call<'_>, String>,
) -> Response {
    submit(
        state,
        visitor,
        call,
        &format!("/admin/products/{}", segment(id)),
        async |error| product_page(state, visitor, me, id, Some(error)).await,
    )
    .await
}

pub(crate) async fn update(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<Pairs>,
) -> Response {
    let Form { visitor, fields } = form;
    let call = Call::new(Method::PATCH, format!("/api/v1/products/{}", segment(&id)))
        .json(product_patch(&fields));
    apply(&state, &visitor, &me, &id, Ok(call)).await
}

/// Field of the publish / unpublish / archive buttons.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct StatusForm {
    status: String,
}

pub(crate) async fn set_status(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<StatusForm>,
) -> Response {
    let Form { visitor, fields } = form;
    let call = Call::new(Method::PATCH, format!("/api/v1/products/{}", segment(&id)))
        .json(json!({ "status": fields.status }));
    apply(&state, &visitor, &me, &id, Ok(call)).await
}

pub(crate) async fn delete(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<Pairs>,
) -> Response {
    let Form { visitor, .. } = form;
    let answer = Call::new(Method::DELETE, format!("/api/v1/products/{}", segment(&id)))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        return product_page(&state, &visitor, &me, &id, Some(answer.message())).await;
    }
    see_other("/admin/products", Vec::new())
}

pub(crate) async fn add_variant(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<Pairs>,
) -> Response {
    let Form { visitor, fields } = form;
    let call = first_variant(&fields).map(|variant| {
        Call::new(
            Method::POST,
            format!("/api/v1/products/{}/variants", segment(&id)),
        )
        .json(variant)
    });
    apply(&state, &visitor, &me, &id, call).await
}

/// The prices of the variant form: `price.EUR` / `compare.EUR` per currency shown, and a
/// new currency's price if one is given. An emptied price drops that currency.
fn variant_prices(pairs: &Pairs) -> Result<Vec<Value>, String> {
    let mut prices = Vec::new();
    for (name, amount) in pairs {
        let Some(currency) = name.strip_prefix("price.") else {
            continue;
        };
        if amount.trim().is_empty() {
            continue;
        }
        let was = field(pairs, &format!("compare.{currency}"));
        prices.push(price(currency, amount, was)?);
    }
    let currency = field(pairs, "new_currency");
    if !currency.is_empty() {
        prices.push(price(currency, field(pairs, "new_price"), "")?);
    }
    if prices.is_empty() {
        return Err("A variant needs at least one price.".to_owned());
    }
    Ok(prices)
}

pub(crate) async fn update_variant(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path((id, variant)): Path<(String, String)>,
    form: Form<Pairs>,
) -> Response {
    let Form { visitor, fields } = form;
    let body = variant_prices(&fields).and_then(|prices| {
        Ok(json!({
            "prices": prices,
            "options": parse_options(field(&fields, "options"))?,
            "weight_grams": weight(field(&fields, "weight_grams"))?,
        }))
    });
    let path = format!(
        "/api/v1/products/{}/variants/{}",
        segment(&id),
        segment(&variant)
    );
    let call = body.map(|body| Call::new(Method::PATCH, path).json(body));
    apply(&state, &visitor, &me, &id, call).await
}

pub(crate) async fn delete_variant(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path((id, variant)): Path<(String, String)>,
    form: Form<Pairs>,
) -> Response {
    let Form { visitor, .. } = form;
    let path = format!(
        "/api/v1/products/{}/variants/{}",
        segment(&id),
        segment(&variant)
    );
    apply(
        &state,
        &visitor,
        &me,
        &id,
        Ok(Call::new(Method::DELETE, path)),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::super::form_pairs as pairs;
    use super::*;

    #[test]
    fn options_are_name_value_pairs() {
        let options = parse_options("size = M, color=red").unwrap();
        assert_eq!(
            Value::Object(options),
            json!({ "size": "M", "color": "red" })
        );
        assert!(parse_options("").unwrap().is_empty());
        assert!(parse_options("large").is_err());
    }

    #[test]
    fn the_edit_form_becomes_a_patch_that_clears_emptied_fields() {
        let form = pairs(&[
            ("title", " Mug "),
            ("brand", ""),
            ("tags", "a, b,,"),
            ("images", "https://x/1.jpg\n\nhttps://x/2.jpg\n"),
            ("category_ids", "cat_1"),
            ("category_ids", "cat_2"),
        ]);
        let patch = product_patch(&form);
        assert_eq!(patch["title"], "Mug");
        assert!(patch.get("slug").is_none());
        assert_eq!(patch["brand"], Value::Null);
        assert_eq!(patch["tags"], json!(["a", "b"]));
        assert_eq!(
            patch["images"],
            json!(["https://x/1.jpg", "https://x/2.jpg"])
        );
        assert_eq!(patch["category_ids"], json!(["cat_1", "cat_2"]));
    }

    #[test]
    fn variant_prices_come_per_currency_and_need_one() {
        let form = pairs(&[
            ("price.EUR", "12.50"),
            ("compare.EUR", "15"),
            ("price.USD", ""),
            ("new_currency", "gbp"),
            ("new_price", "11"),
        ]);
        assert_eq!(
            variant_prices(&form).unwrap(),
            vec![
                json!({ "amount": 1250, "currency": "EUR", "compare_at_amount": 1500 }),
                json!({ "amount": 1100, "currency": "GBP" }),
            ]
        );
        assert!(variant_prices(&pairs(&[("price.EUR", "")])).is_err());
        assert!(variant_prices(&pairs(&[("price.EUR", "abc")])).is_err());
    }
}
