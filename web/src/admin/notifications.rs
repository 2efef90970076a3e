//! Notifications: the delivery log, delivery counts, and the message templates (list, create
//! a new version, preview with data).

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Staff, list};
use crate::api::Call;
use crate::session::{Form, Visitor};
use crate::{Page, WebState, see_other};

/// Templates of these pages.
pub(crate) const TEMPLATES: &[(&str, &str)] = &[(
    "admin/ops/notifications.html",
    include_str!("../../templates/admin/ops/notifications.html"),
)];

/// Routes of these pages.
pub(crate) fn routes() -> axum::Router<WebState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/admin/notifications", get(notifications))
        .route("/admin/notifications/templates", post(save_template))
        .route("/admin/notifications/preview", post(preview))
}

/// Channels a template can be for.
const CHANNELS: &[&str] = &["email", "sms", "push", "in_app", "webhook", "chat"];

/// The template form's fields (also the page's `?edit=` of a template id).
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
#[serde(default)]
pub(crate) struct TemplateForm {
    name: String,
    channel: String,
    locale: String,
    subject: String,
    body: String,
    html: String,
    variables: String,
    category: String,
    /// Preview data, a JSON object.
    data: String,
}

/// Query of the page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PageQuery {
    /// Template id whose texts fill the form.
    edit: String,
}

/// Comma- or space-separated variable names.
pub(crate) fn variable_names(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n', '\r', '\t'])
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The form of an existing template version.
fn form_of(template: &Value) -> TemplateForm {
    let text = |key: &str| template[key].as_str().unwrap_or_default().to_owned();
    let variables: Vec<&str> = template["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let data: serde_json::Map<String, Value> = variables
        .iter()
        .map(|v| ((*v).to_owned(), json!("")))
        .collect();
    TemplateForm {
        name: text("name"),
        channel: text("channel"),
        locale: text("locale"),
        subject: text("subject"),
        body: text("body"),
        html: text("html"),
        variables: variables.join(", "),
        category: text("category"),
        data: Value::Object(data).to_string(),
    }
}

struct Extra {
    form: Option<TemplateForm>,
    preview: Option<Value>,
    error: Option<String>,
    status: StatusCode,
}

async fn page(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    edit: &str,
    extra: Extra,
) -> Response {
    let log = Call::get("/api/v1/notifications?limit=50")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let counts = Call::get("/api/v1/notifications/analytics?days=30")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let templates = Call::get("/api/v1/templates")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    let mut errors: Vec<String> = extra.error.into_iter().collect();
    for (what, answer) in [
        ("Delivery log", &log),
        ("Delivery counts", &counts),
        ("Templates", &templates),
    ] {
        if !answer.ok() {
            errors.push(format!("{what}: {}", answer.message()));
        }
    }
    let templates = list(&templates.body);
    let form = extra.form.unwrap_or_else(|| {
        templates
            .iter()
            .find(|t| !edit.is_empty() && t["id"] == edit)
            .map(form_of)
            .unwrap_or_else(|| TemplateForm {
                channel: "email".to_owned(),
                data: "{}".to_owned(),
                ..TemplateForm::default()
            })
    });
    Page::render(
        state,
        visitor,
        "admin/ops/notifications.html",
        json!({
            "me": me,
            "log": list(&log.body),
            "counts": list(&counts.body),
            "templates": templates,
            "form": form,
            "channels": CHANNELS,
            "preview": extra.preview,
            "errors": errors,
        }),
    )
    .with_status(extra.status)
    .into_response()
}

pub(crate) async fn notifications(
    State(state): State<WebState>,
    Staff(me): Staff,
    visitor: Visitor,
    Query(query): Query<PageQuery>,
) -> Response {
    let extra = Extra {
        form: None,
        preview: None,
        error: None,
        status: StatusCode::OK,
    };
    page(&state, &visitor, &me, &query.edit, extra).await
}

/// The form again with `error`.
async fn refused(
    state: &WebState,
    visitor: &Visitor,
    me: &Value,
    form: TemplateForm,
    error: String,
) -> Response {
    let extra = Extra {
        form: Some(form),
        preview: None,
        error: Some(error),
        status: StatusCode::UNPROCESSABLE_ENTITY,
    };
    page(state, visitor, me, "", extra).await
}

/// Saves the form as a new template (or a new version of one of that name).
pub(crate) async fn save_template(
    State(state): State<WebState>,
    Staff(me): Staff,
    form: Form<TemplateForm>,
) -> Response {
    let Form { visitor, fields } = form;
    let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    let answer = Call::new(Method::POST, "/api/v1/templates")
        .json(json!({
            "name": fields.name.trim(),
            "channel": fields.channel,
            "locale": optional(&fields.locale),
            "subject": fields.subject,
            "body": fields.body,
            "html": optional(&fields.html),
            "variables": variable_names(&fields.variables),
            "category": optional(&fields.category),
        }))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        return refused(&state, &visitor, &me, fields, answer.message()).await;
    }
    let id = answer.body["id"].as_str().unwrap_or_default();
    see_other(
        &format!(
            "/admin/notifications?{}#template-form",
            crate::shop::query_string(&[("edit", id)])
        ),
        Vec::new(),
    )
}

/// Renders the saved template of the form's name and channel with the form's data.
pub(crate) async fn preview(
    State(state): State<WebState>,
    Staff(me): Staff,
    form: Form<TemplateForm>,
) -> Response {
    let Form { visitor, fields } = form;
    let data = if fields.data.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(&fields.data) {
            Ok(data) if data.is_object() => data,
            _ => {
                let error = "Preview data must be a JSON object, e.g. {\"name\": \"Ada\"}.";
                return refused(&state, &visitor, &me, fields, error.to_owned()).await;
            }
        }
    };
    let locale = Some(fields.locale.trim()).filter(|l| !l.is_empty());
    let answer = Call::new(Method::POST, "/api/v1/templates/preview")
        .json(json!({
            "name": fields.name.trim(),
            "channel": fields.channel,
            "locale": locale,
            "data": data,
        }))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        return refused(&state, &visitor, &me, fields, answer.message()).await;
    }
    let extra = Extra {
        form: Some(fields),
        preview: Some(answer.body),
        error: None,
        status: StatusCode::OK,
    };
    page(&state, &visitor, &me, "", extra).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_split_on_commas_and_spaces() {
        assert_eq!(
            variable_names(" name, order_number\ntotal  "),
            ["name", "order_number", "total"]
        );
        assert!(variable_names(" , ").is_empty());
    }

    #[test]
    fn an_existing_template_fills_the_form_with_empty_preview_data() {
        let form = form_of(&json!({
            "name": "welcome", "channel": "email", "locale": "", "subject": "Hi {{ name }}",
            "body": "b", "html": null, "variables": ["name"], "category": "transactional",
        }));
        assert_eq!(form.name, "welcome");
        assert_eq!(form.variables, "name");
        assert_eq!(form.html, "");
        assert_eq!(form.data, r#"{"name":""}"#);
    }
}
