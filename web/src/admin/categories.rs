//! Categories: the tree, with create, rename, move and delete.

use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Staff, flat_categories, submit};
use crate::api::Call;
use crate::session::{Form, Visitor};
use crate::shop::segment;
use crate::{Page, WebState, status_for};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[(
    "admin/catalog/categories.html",
    include_str!("../../templates/admin/catalog/categories.html"),
)];

/// Routes of these pages.
pub(crate) fn routes() -> axum::Router<WebState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/categories", get(categories).post(create))
        .route("/admin/categories/{id}", post(update))
        .route("/admin/categories/{id}/delete", post(delete))
}

/// Fields of the category forms.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CategoryForm {
    name: String,
    slug: String,
    parent_id: String,
    position: String,
}

impl CategoryForm {
    /// The form as a catalog body; empty fields are left out, an empty parent means a root.
    fn body(&self) -> Result<Value, String> {
        let mut body = json!({
            "name": self.name.trim(),
            "parent_id": match self.parent_id.trim() {
                "" => Value::Null,
                parent => Value::from(parent),
            },
        });
        if !self.slug.trim().is_empty() {
            body["slug"] = Value::from(self.slug.trim());
        }
        if !self.position.trim().is_empty() {
            let position: i64 = self
                .position
                .trim()
                .parse()
                .map_err(|_| "The position is a whole number.".to_owned())?;
            body["position"] = Value::from(position);
        }
        Ok(body)
    }
}

async fn categories_page(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    error: Option<String>,
) -> Response {
    let tree = Call::get("/api/v1/categories")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let error = error.or_else(|| (!tree.ok()).then(|| tree.message()));
    let status = status_for(&error);
    Page::render(
        state,
        visitor,
        "admin/catalog/categories.html",
        json!({ "me": me, "categories": flat_categories(&tree.body), "error": error }),
    )
    .with_status(status)
    .into_response()
}

pub(crate) async fn categories(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
) -> Response {
    categories_page(&state, &visitor, &me, None).await
}

/// Sends `call`; back to the list, with the API's complaint if it refused.
async fn apply(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    call: Result<Call<'_>, String>,
) -> Response {
    submit(state, visitor, call, "/admin/categories", async |error| {
        categories_page(state, visitor, me, Some(error)).await
    })
    .await
}

pub(crate) async fn create(
    State(state): State<WebState>,
    Staff(me): Staff,
    form: Form<CategoryForm>,
) -> Response {
    let Form { visitor, fields } = form;
    let call = fields
        .body()
        .map(|body| Call::new(Method::POST, "/api/v1/categories").json(body));
    apply(&state, &visitor, &me, call).await
}

pub(crate) async fn update(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<CategoryForm>,
) -> Response {
    let Form { visitor, fields } = form;
    let path = format!("/api/v1/categories/{}", segment(&id));
    let call = fields
        .body()
        .map(|body| Call::new(Method::PATCH, path).json(body));
    apply(&state, &visitor, &me, call).await
}

pub(crate) async fn delete(
    State(state): State<WebState>,
    Staff(me): Staff,
    Path(id): Path<String>,
    form: Form<CategoryForm>,
) -> Response {
    let Form { visitor, .. } = form;
    let path = format!("/api/v1/categories/{}", segment(&id));
    apply(&state, &visitor, &me, Ok(Call::new(Method::DELETE, path))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_leaves_out_what_is_empty_and_checks_the_position() {
        let form = CategoryForm {
            name: " Mugs ".into(),
            parent_id: "cat_1".into(),
            ..CategoryForm::default()
        };
        assert_eq!(
            form.body().unwrap(),
            json!({ "name": "Mugs", "parent_id": "cat_1" })
        );
        let root = CategoryForm {
            name: "Top".into(),
            slug: "top".into(),
            position: "2".into(),
            ..CategoryForm::default()
        };
        assert_eq!(
            root.body().unwrap(),
            json!({ "name": "Top", "slug": "top", "parent_id": null, "position": 2 })
        );
        let bad = CategoryForm {
            position: "first".into(),
            ..CategoryForm::default()
        };
        assert!(bad.body().is_err());
    }
}
