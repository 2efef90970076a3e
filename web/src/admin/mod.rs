//! The admin: staff only; anonymous visitors are sent to sign in. Each area (orders, …) has
//! its module with its routes and templates.

mod categories;
mod dashboard;
mod inventory;
mod notifications;
mod orders;
mod payments;
mod products;
mod promotions;
mod stock;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::api::Call;
use crate::session::Visitor;
use crate::shop::query_string;
use crate::{Page, WebState, see_other};

/// Templates of every admin page.
pub(crate) const TEMPLATES: &[&[(&str, &str)]] = &[
    orders::TEMPLATES,
    stock::TEMPLATES,
    dashboard::TEMPLATES,
    inventory::TEMPLATES,
    payments::TEMPLATES,
    notifications::TEMPLATES,
    products::TEMPLATES,
    categories::TEMPLATES,
    promotions::TEMPLATES,
];

/// Routes of every admin page; `/admin` is the dashboard.
pub(crate) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin", axum::routing::get(dashboard::dashboard))
        .merge(orders::routes())
        .merge(stock::routes())
        .merge(dashboard::routes())
        .merge(inventory::routes())
        .merge(payments::routes())
        .merge(notifications::routes())
        .merge(products::routes())
        .merge(categories::routes())
        .merge(promotions::routes())
}

/// The signed-in staff member's account. Anonymous visitors are sent to sign in and come
/// back to the page they asked for (the area's first page after a form); other users get a
/// 403 page.
pub(crate) struct Staff(pub(crate) Value);

impl FromRequestParts<WebState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let visitor = Visitor::from_parts(parts);
        let here = if parts.method == Method::GET {
            parts
                .uri
                .path_and_query()
                .map_or("/admin", |p| p.as_str())
                .to_owned()
        } else {
            area(parts.uri.path())
        };
        let to_login = || {
            let next = query_string(&[("next", here.as_str())]);
            see_other(&format!("/login?{next}"), Vec::new())
        };
        let Some(token) = visitor.token.as_deref() else {
            return Err(to_login());
        };
        let me = Call::get("/api/v1/users/me")
            .token(Some(token))
            .peer(visitor.peer)
            .send(&state.api)
            .await;
        if me.status == StatusCode::UNAUTHORIZED {
            return Err(to_login());
        }
        let is_staff = me.body["roles"]
            .as_array()
            .is_some_and(|roles| roles.iter().any(|r| r == "staff" || r == "admin"));
        if !is_staff {
            return Err(
                Page::error(state, &visitor, 403, "The admin is for staff only.").into_response(),
            );
        }
        Ok(Self(me.body))
    }
}

/// The first page of the admin area `path` belongs to: `/admin/products/prd_1/status` →
/// `/admin/products`.
fn area(path: &str) -> String {
    path.split('/').take(3).collect::<Vec<_>>().join("/")
}

/// Sends `call` for the visitor, or takes the form's own complaint: a refusal shows `page`
/// again with the message, success goes on to `done`.
pub(crate) async fn submit(
    state: &WebState,
    visitor: &Visitor,
    call: Result<Call<'_>, String>,
    done: &str,
    page: impl AsyncFnOnce(String) -> Response,
) -> Response {
    let answer = match call {
        Ok(call) => call.for_visitor(visitor).send(&state.api).await,
        Err(error) => return page(error).await,
    };
    if !answer.ok() {
        return page(answer.message()).await;
    }
    see_other(done, Vec::new())
}

/// The answer's list: a bare array, or a page's `data`.
pub(crate) fn list(answer: &Value) -> Vec<Value> {
    answer
        .as_array()
        .or_else(|| answer["data"].as_array())
        .cloned()
        .unwrap_or_default()
}

/// The fields of a submitted form, in order: pickers and check boxes repeat their name.
pub(crate) type Pairs = Vec<(String, String)>;

/// The first value of `name`, trimmed; empty when absent.
pub(crate) fn field<'p>(pairs: &'p Pairs, name: &str) -> &'p str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.trim())
}

/// Every non-empty value of `name`, trimmed.
pub(crate) fn fields<'p>(pairs: &'p Pairs, name: &'p str) -> impl Iterator<Item = &'p str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A submitted form's fields, for tests.
#[cfg(test)]
pub(crate) fn form_pairs(list: &[(&str, &str)]) -> Pairs {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `12.50` (major units) as 1250 minor units; positive, at most two decimals.
pub(crate) fn parse_amount(text: &str) -> Option<i64> {
    let text = text.trim();
    let (units, cents) = text.split_once(['.', ',']).unwrap_or((text, "0"));
    let units: i64 = units.parse().ok().filter(|u| *u >= 0)?;
    let cents: i64 = match cents.len() {
        1 => cents.parse::<i64>().ok()? * 10,
        2 => cents.parse().ok()?,
        _ => return None,
    };
    units
        .checked_mul(100)?
        .checked_add(cents)
        .filter(|a| *a > 0)
}

/// The category tree (roots with their `children`) in display order, each with its `depth`
/// and a `label` indented by it, for lists and pickers.
pub(crate) fn flat_categories(tree: &Value) -> Vec<Value> {
    fn walk(nodes: &Value, depth: usize, out: &mut Vec<Value>) {
        for node in nodes.as_array().into_iter().flatten() {
            let mut row = node.clone();
            if let Some(row) = row.as_object_mut() {
                row.remove("children");
                let name = node["name"].as_str().unwrap_or_default();
                row.insert("depth".into(), depth.into());
                row.insert(
                    "label".into(),
                    format!("{}{name}", "— ".repeat(depth)).into(),
                );
            }
            out.push(row);
            walk(&node["children"], depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(tree, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_form_returns_to_its_area_after_sign_in() {
        assert_eq!(area("/admin/products/prd_1/status"), "/admin/products");
        assert_eq!(area("/admin"), "/admin");
    }

    #[test]
    fn lists_come_bare_or_in_a_page() {
        assert_eq!(list(&json!([1, 2])).len(), 2);
        assert_eq!(list(&json!({ "data": [1] })).len(), 1);
        assert!(list(&json!({ "detail": "nope" })).is_empty());
    }

    #[test]
    fn amounts_are_read_in_major_units() {
        assert_eq!(parse_amount("12.50"), Some(1250));
        assert_eq!(parse_amount("3,5"), Some(350));
        assert_eq!(parse_amount("7"), Some(700));
        assert_eq!(parse_amount("0"), None);
        assert_eq!(parse_amount("-1"), None);
        assert_eq!(parse_amount("1.234"), None);
    }

    #[test]
    fn the_category_tree_is_flattened_depth_first() {
        let tree = json!([
            { "id": "a", "name": "A", "children": [{ "id": "b", "name": "B", "children": [] }] },
            { "id": "c", "name": "C", "children": [] },
        ]);
        let flat = flat_categories(&tree);
        let labels: Vec<&str> = flat.iter().filter_map(|c| c["label"].as_str()).collect();
        assert_eq!(labels, ["A", "— B", "C"]);
        assert_eq!(flat[1]["depth"], 1);
        assert!(flat[0].get("children").is_none());
    }
}
