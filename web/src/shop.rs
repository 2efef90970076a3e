//! The storefront: browse, search, cart, checkout, orders and the shopper's account.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::account::{AddressForm, saved_addresses};
use crate::api::{Answer, Call};
use crate::session::{CART, Form, Visitor, set_cookie};
use crate::{Page, WebState, see_other, status_for};

/// The storefront's currency: carts are opened in it and prices shown in it.
const CURRENCY: &str = "EUR";
/// How long a cart is remembered.
const CART_SECONDS: u64 = 30 * 24 * 3600;

pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

/// A path segment from the visitor, percent-encoded.
pub(crate) fn segment(raw: &str) -> String {
    serde_urlencoded::to_string([("", raw)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// Top-level categories shown as collections on the home page.
const COLLECTIONS: usize = 3;

pub(crate) async fn home(State(state): State<WebState>, visitor: Visitor) -> Page {
    let search = format!(
        "/api/v1/search?{}",
        query_string(&[("sort", "newest"), ("limit", "8"), ("currency", CURRENCY)])
    );
    let featured = Call::get(search).peer(visitor.peer).send(&state.api).await;
    let categories = Call::get("/api/v1/categories?limit=100")
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    let categories = if categories.body.is_array() {
        categories.body
    } else {
        json!([])
    };
    let mut collections = Vec::new();
    for category in categories
        .as_array()
        .into_iter()
        .flatten()
        .take(COLLECTIONS)
    {
        let id = category["id"].as_str().unwrap_or_default();
        let query = query_string(&[("category", id), ("currency", CURRENCY), ("limit", "4")]);
        let hits = Call::get(format!("/api/v1/search?{query}"))
            .peer(visitor.peer)
            .send(&state.api)
            .await;
        if let Some(hits) = hits
            .body
            .get("hits")
            .filter(|h| h.as_array().is_some_and(|a| !a.is_empty()))
        {
            collections.push(json!({ "category": category, "hits": hits }));
        }
    }
    Page::render(
        &state,
        &visitor,
        "shop/home.html",
        json!({
            "featured": featured.body.get("hits").cloned().unwrap_or(json!([])),
            "categories": categories,
            "collections": collections,
        }),
    )
}

/// Query of `/search`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SearchForm {
    q: String,
    brand: String,
    category: String,
    sort: String,
}

pub(crate) async fn search(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(form): Query<SearchForm>,
) -> Page {
    let query = query_string(&[
        ("q", form.q.trim()),
        ("brand", &form.brand),
        ("category", &form.category),
        ("sort", &form.sort),
        ("currency", CURRENCY),
        ("limit", "24"),
    ]);
    let answer = Call::get(format!("/api/v1/search?{query}"))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    let error = (!answer.ok()).then(|| answer.message());
    Page::render(
        &state,
        &visitor,
        "shop/search.html",
        json!({
            "q": form.q, "brand": form.brand, "category": form.category, "sort": form.sort,
            "results": answer.body, "error": error,
        }),
    )
}

pub(crate) async fn category(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(slug): Path<String>,
) -> Page {
    let categories = Call::get("/api/v1/categories?limit=100")
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    let found = find_category(&categories.body, &slug).cloned();
    let Some(found) = found else {
        return Page::error(&state, &visitor, 404, "There is no such category.");
    };
    let id = found["id"].as_str().unwrap_or_default();
    let query = query_string(&[("category", id), ("currency", CURRENCY), ("limit", "24")]);
    let answer = Call::get(format!("/api/v1/search?{query}"))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    Page::render(
        &state,
        &visitor,
        "shop/search.html",
        json!({ "heading": found["name"], "results": answer.body, "category": id }),
    )
}

/// The category of `slug` in the tree (roots with their `children`).
fn find_category<'t>(tree: &'t Value, slug: &str) -> Option<&'t Value> {
    tree.as_array()?.iter().find_map(|node| {
        if node["slug"] == slug {
            Some(node)
        } else {
            find_category(&node["children"], slug)
        }
    })
}

pub(crate) async fn product(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(slug): Path<String>,
) -> Page {
    let answer = Call::get(format!("/api/v1/products/{}", segment(&slug)))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if answer.status == StatusCode::NOT_FOUND {
        return Page::error(&state, &visitor, 404, "This product is not in the shop.");
    }
    if !answer.ok() {
        return Page::error(&state, &visitor, 503, &answer.message());
    }
    let mut product = answer.body;
    // The page shows each variant's price in the shop's currency.
    if let Some(variants) = product.get_mut("variants").and_then(Value::as_array_mut) {
        for variant in variants {
            let price = variant["prices"]
                .as_array()
                .and_then(|prices| prices.iter().find(|p| p["currency"] == CURRENCY))
                .cloned();
            variant["price"] = price.unwrap_or(Value::Null);
        }
    }
    apply_promotions(&state, &visitor, &mut product).await;
    Page::render(
        &state,
        &visitor,
        "shop/product.html",
        json!({ "product": product, "currency": CURRENCY }),
    )
}

/// Sets each priced variant's `sale` to its price after automatic promotions (one unit), when
/// lower than its list price. Without a quote the list prices stand.
async fn apply_promotions(state: &WebState, visitor: &Visitor, product: &mut Value) {
    let Some(variants) = product.get_mut("variants").and_then(Value::as_array_mut) else {
        return;
    };
    let lines: Vec<Value> = variants
        .iter()
        .filter(|v| v["price"].is_object())
        .map(|v| json!({ "sku": v["sku"], "quantity": 1 }))
        .collect();
    if lines.is_empty() {
        return;
    }
    let quote = Call::new(Method::POST, "/api/v1/prices/quote")
        .json(json!({ "currency": CURRENCY, "lines": lines }))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    let Some(quoted) = quote.body["lines"].as_array().filter(|_| quote.ok()) else {
        return;
    };
    for variant in variants.iter_mut() {
        let line = quoted.iter().find(|l| l["sku"] == variant["sku"]);
        let (Some(total), Some(list)) = (
            line.and_then(|l| l["total"]["amount"].as_i64()),
            variant["price"]["amount"].as_i64(),
        ) else {
            continue;
        };
        if total < list {
            variant["sale"] = json!(total);
        }
    }
}

/// The visitor's open cart, if the cookie names one the API still has open.
async fn open_cart(state: &WebState, visitor: &Visitor) -> Option<Value> {
    let id = visitor.cart.as_deref()?;
    let answer = Call::get(format!("/api/v1/carts/{}", segment(id)))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    (answer.ok() && answer.body["status"] == "open").then_some(answer.body)
}

/// The visitor's open cart, opened when there is none.
async fn cart_or_new(state: &WebState, visitor: &Visitor) -> Result<Value, Answer> {
    if let Some(cart) = open_cart(state, visitor).await {
        return Ok(cart);
    }
    let answer = Call::new(Method::POST, "/api/v1/carts")
        .json(json!({ "currency": CURRENCY }))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    if answer.ok() {
        Ok(answer.body)
    } else {
        Err(answer)
    }
}

pub(crate) fn cart_cookie(state: &WebState, cart: &Value) -> Vec<axum::http::HeaderValue> {
    cart["id"]
        .as_str()
        .and_then(|id| set_cookie(state, CART, id, Some(CART_SECONDS)))
        .into_iter()
        .collect()
}

fn cart_page(
    state: &WebState,
    visitor: &Visitor,
    cart: Option<Value>,
    error: Option<String>,
) -> Page {
    let status = status_for(&error);
    Page::render(
        state,
        visitor,
        "shop/cart.html",
        json!({ "cart": cart, "error": error }),
    )
    .with_status(status)
}

pub(crate) async fn cart(State(state): State<WebState>, visitor: Visitor) -> Page {
    let cart = open_cart(&state, &visitor).await;
    cart_page(&state, &visitor, cart, None)
}

/// Fields of "add to cart".
#[derive(Debug, Deserialize)]
pub(crate) struct AddItem {
    sku: String,
    quantity: Option<String>,
}

pub(crate) async fn add_item(State(state): State<WebState>, form: Form<AddItem>) -> Response {
    let Form { visitor, fields } = form;
    let quantity = match fields.quantity.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(q) => match q.parse::<i64>() {
            Ok(q) if q > 0 => q,
            _ => {
                let cart = open_cart(&state, &visitor).await;
                let error = "The quantity must be a whole number of at least 1.".to_owned();
                return cart_page(&state, &visitor, cart, Some(error)).into_response();
            }
        },
    };
    let cart = match cart_or_new(&state, &visitor).await {
        Ok(cart) => cart,
        Err(answer) => {
            return cart_page(&state, &visitor, None, Some(answer.message())).into_response();
        }
    };
    let id = cart["id"].as_str().unwrap_or_default();
    let added = Call::new(Method::POST, format!("/api/v1/carts/{}/items", segment(id)))
        .json(json!({ "sku": fields.sku, "quantity": quantity }))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    let cookies = cart_cookie(&state, &cart);
    if !added.ok() {
        let message = match added.code() {
            "insufficient_stock" => format!(
                "Only {} left in stock.",
                added.body["available"].as_i64().unwrap_or(0)
            ),
            _ => added.message(),
        };
        let mut page = cart_page(&state, &visitor, Some(cart), Some(message));
        page.cookies.extend(cookies);
        return page.into_response();
    }
    see_other("/cart", cookies)
}

/// Fields of a cart line's form.
#[derive(Debug, Deserialize)]
pub(crate) struct ChangeItem {
    quantity: Option<String>,
    remove: Option<String>,
}

pub(crate) async fn change_item(
    State(state): State<WebState>,
    Path(item): Path<String>,
    form: Form<ChangeItem>,
) -> Response {
    let Form { visitor, fields } = form;
    let Some(cart) = open_cart(&state, &visitor).await else {
        return see_other("/cart", Vec::new());
    };
    let id = cart["id"].as_str().unwrap_or_default();
    let path = format!("/api/v1/carts/{}/items/{}", segment(id), segment(&item));
    let quantity = fields.quantity.as_deref().map(str::trim).unwrap_or("0");
    let call = if fields.remove.is_some() || quantity == "0" {
        Call::new(Method::DELETE, path)
    } else {
        match quantity.parse::<i64>() {
            Ok(q) if q > 0 => Call::new(Method::PATCH, path).json(json!({ "quantity": q })),
            _ => {
                let error = "The quantity must be a whole number.".to_owned();
                return cart_page(&state, &visitor, Some(cart), Some(error)).into_response();
            }
        }
    };
    let answer = call.for_visitor(&visitor).send(&state.api).await;
    if !answer.ok() {
        let cart = open_cart(&state, &visitor).await;
        return cart_page(&state, &visitor, cart, Some(answer.message())).into_response();
    }
    see_other("/cart", Vec::new())
}

/// Fields of the coupon form.
#[derive(Debug, Deserialize)]
pub(crate) struct Coupon {
    code: String,
}

pub(crate) async fn apply_coupon(State(state): State<WebState>, form: Form<Coupon>) -> Response {
    let Form { visitor, fields } = form;
    let Some(cart) = open_cart(&state, &visitor).await else {
        return see_other("/cart", Vec::new());
    };
    let id = cart["id"].as_str().unwrap_or_default();
    let answer = Call::new(
        Method::POST,
        format!("/api/v1/carts/{}/coupon", segment(id)),
    )
    .json(json!({ "code": fields.code.trim() }))
    .for_visitor(&visitor)
    .send(&state.api)
    .await;
    if !answer.ok() {
        return cart_page(&state, &visitor, Some(cart), Some(answer.message())).into_response();
    }
    see_other("/cart", Vec::new())
}

/// Fields of the checkout form.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub(crate) struct CheckoutForm {
    email: String,
    name: String,
    line1: String,
    line2: String,
    city: String,
    postal_code: String,
    country: String,
    /// Checked: a signed-in shopper keeps this address in their address book.
    save_address: String,
    #[serde(skip_serializing)]
    card_number: String,
    exp: String,
    #[serde(skip_serializing)]
    cvc: String,
    /// One per rendering of the form: a double submit replays the same checkout.
    attempt: String,
}

impl CheckoutForm {
    /// The shipping address as an address form.
    fn shipping(&self) -> AddressForm {
        AddressForm {
            name: self.name.clone(),
            line1: self.line1.clone(),
            line2: self.line2.clone(),
            city: self.city.clone(),
            postal_code: self.postal_code.clone(),
            country: self.country.clone(),
            ..AddressForm::default()
        }
    }
}

fn checkout_page(
    state: &WebState,
    visitor: &Visitor,
    cart: &Value,
    form: &CheckoutForm,
    error: Option<String>,
) -> Page {
    checkout_page_with(state, visitor, cart, form, &[], error)
}

/// The checkout form, offering the shopper's `saved` addresses.
fn checkout_page_with(
    state: &WebState,
    visitor: &Visitor,
    cart: &Value,
    form: &CheckoutForm,
    saved: &[Value],
    error: Option<String>,
) -> Page {
    let attempt = hex::encode(rand::random::<[u8; 16]>());
    let status = status_for(&error);
    Page::render(
        state,
        visitor,
        "shop/checkout.html",
        json!({
            "cart": cart, "form": form, "attempt": attempt, "error": error,
            "saved": saved, "signed_in_shopper": visitor.token.is_some(),
        }),
    )
    .with_status(status)
}

/// Query of the checkout form: which saved address to fill in.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CheckoutQuery {
    address: String,
}

pub(crate) async fn checkout_form(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(query): Query<CheckoutQuery>,
) -> Response {
    let Some(cart) = open_cart(&state, &visitor).await else {
        return see_other("/cart", Vec::new());
    };
    let mut form = CheckoutForm {
        country: "DE".to_owned(),
        ..CheckoutForm::default()
    };
    if let Some(email) = cart["email"].as_str() {
        email.clone_into(&mut form.email);
    }
    // The chosen saved address, else the newest one, is filled in.
    let saved = saved_addresses(&state, &visitor).await;
    let chosen = saved
        .iter()
        .find(|a| a["id"] == query.address.as_str())
        .or_else(|| saved.first());
    if let Some(chosen) = chosen {
        let address = &chosen["address"];
        let text = |key: &str| address[key].as_str().unwrap_or_default().to_owned();
        form.name = text("name");
        form.line1 = text("line1");
        form.line2 = text("line2");
        form.city = text("city");
        form.postal_code = text("postal_code");
        form.country = text("country");
    }
    checkout_page_with(&state, &visitor, &cart, &form, &saved, None).into_response()
}

/// `MM/YY` or `MM/YYYY` as (month, four-digit year).
fn expiry(text: &str) -> Option<(u32, u32)> {
    let (month, year) = text.trim().split_once('/')?;
    let month: u32 = month.trim().parse().ok().filter(|m| (1..=12).contains(m))?;
    let year: u32 = year.trim().parse().ok()?;
    let year = if year < 100 { 2000 + year } else { year };
    Some((month, year))
}

pub(crate) async fn checkout(State(state): State<WebState>, form: Form<CheckoutForm>) -> Response {
    let Form { visitor, fields } = form;
    let Some(cart) = open_cart(&state, &visitor).await else {
        return see_other("/cart", Vec::new());
    };
    let Some((exp_month, exp_year)) = expiry(&fields.exp) else {
        let error = "Enter the card's expiry date as MM/YY.".to_owned();
        return checkout_page(&state, &visitor, &cart, &fields, Some(error)).into_response();
    };
    let cart_id = cart["id"].as_str().unwrap_or_default().to_owned();
    let attempt = if fields.attempt.len() == 32 {
        fields.attempt.clone()
    } else {
        hex::encode(rand::random::<[u8; 16]>())
    };
    let card_number: String = fields
        .card_number
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let body = json!({
        "cart_id": cart_id,
        "email": fields.email.trim(),
        "shipping_address": fields.shipping().address(),
        "payment_method": {
            "type": "card",
            "card": {
                "number": card_number,
                "exp_month": exp_month,
                "exp_year": exp_year,
                "cvc": fields.cvc.trim(),
            }
        }
    });
    let placed = Call::new(Method::POST, "/api/v1/checkout")
        .json(body)
        .idempotency_key(format!("web-{cart_id}-{attempt}"))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if !placed.ok() {
        return checkout_page(&state, &visitor, &cart, &fields, Some(placed.message()))
            .into_response();
    }
    let order = placed.body;
    let order_id = order["id"].as_str().unwrap_or_default();
    if order["status"] == "cancelled" {
        // The order took the cart: the shopper gets the same items in a new one to try again.
        let reason = order["cancel_reason"]
            .as_str()
            .unwrap_or("the payment failed");
        let error = format!(
            "Your payment did not go through ({reason}). Your cart is kept: check the card and try again."
        );
        let restored = restore_cart(&state, &visitor, &cart).await;
        let mut page = match &restored {
            Some(new_cart) => checkout_page(&state, &visitor, new_cart, &fields, Some(error)),
            None => cart_page(&state, &visitor, None, Some(error)),
        };
        if let Some(new_cart) = &restored {
            page.cookies.extend(cart_cookie(&state, new_cart));
        }
        return page.into_response();
    }
    if fields.save_address == "on" {
        save_address(&state, &visitor, fields.shipping().address()).await;
    }
    let forget_cart = set_cookie(&state, CART, "", Some(0)).into_iter().collect();
    let location = format!(
        "/orders/{}?{}",
        segment(order_id),
        query_string(&[
            ("email", order["email"].as_str().unwrap_or_default()),
            ("placed", "1")
        ])
    );
    see_other(&location, forget_cart)
}

/// Keeps `address` in the signed-in shopper's address book unless it is there already. The
/// order is placed either way: a full book only means it is not kept.
async fn save_address(state: &WebState, visitor: &Visitor, address: Value) {
    let saved = saved_addresses(state, visitor).await;
    if visitor.token.is_none() || saved.iter().any(|a| a["address"] == address) {
        return;
    }
    let answer = Call::new(Method::POST, "/api/v1/users/me/addresses")
        .json(json!({ "address": address }))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        tracing::info!(status = %answer.status, "the checkout address was not saved");
    }
}

/// A new open cart holding what `old` held (items and coupon), or `None` if it cannot be made.
async fn restore_cart(state: &WebState, visitor: &Visitor, old: &Value) -> Option<Value> {
    let opened = Call::new(Method::POST, "/api/v1/carts")
        .json(json!({ "currency": old["currency"], "email": old["email"] }))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    if !opened.ok() {
        return None;
    }
    let id = opened.body["id"].as_str()?.to_owned();
    for item in old["items"].as_array().into_iter().flatten() {
        Call::new(
            Method::POST,
            format!("/api/v1/carts/{}/items", segment(&id)),
        )
        .json(json!({ "sku": item["sku"], "quantity": item["quantity"] }))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    }
    if let Some(code) = old["coupon"].as_str() {
        Call::new(
            Method::POST,
            format!("/api/v1/carts/{}/coupon", segment(&id)),
        )
        .json(json!({ "code": code }))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    }
    let reread = Call::get(format!("/api/v1/carts/{}", segment(&id)))
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    reread.ok().then_some(reread.body)
}

/// Query of an order page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct OrderQuery {
    email: String,
    placed: String,
}

pub(crate) async fn order(
    State(state): State<WebState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(query): Query<OrderQuery>,
) -> Page {
    let path = format!(
        "/api/v1/orders/{}?{}",
        segment(&id),
        query_string(&[("email", &query.email)])
    );
    let answer = Call::get(path).for_visitor(&visitor).send(&state.api).await;
    if !answer.ok() {
        return Page::error(&state, &visitor, 404, "We cannot find this order.");
    }
    Page::render(
        &state,
        &visitor,
        "shop/order.html",
        json!({ "order": answer.body, "placed": query.placed == "1" }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_dates_accept_two_or_four_digit_years() {
        assert_eq!(expiry("12/30"), Some((12, 2030)));
        assert_eq!(expiry(" 1 / 2031 "), Some((1, 2031)));
        assert_eq!(expiry("13/30"), None);
        assert_eq!(expiry("1230"), None);
    }

    #[test]
    fn categories_are_found_at_any_depth() {
        let tree = json!([{ "slug": "a", "children": [{ "slug": "a-b", "children": [] }] }]);
        assert_eq!(find_category(&tree, "a-b").unwrap()["slug"], "a-b");
        assert!(find_category(&tree, "c").is_none());
    }
}
