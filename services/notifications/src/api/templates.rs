//! `/api/v1/templates`: versioned templates per name, channel and locale. Creating one with a
//! name that exists adds a version; sends use the newest.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use mercato_kernel::auth::{RequireRole, Staff};
use mercato_kernel::error::Problem;
use mercato_kernel::time::rfc3339;
use mercato_kernel::{ApiError, FieldError, Json};
use mercato_store::{is_unique_violation, now_micros};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use crate::compose::Variant;
use crate::domain::{self, Channel, TRANSACTIONAL};
use crate::store::{self, TemplateRow};
use crate::templates::{self, MAX_TEMPLATE_BYTES, Texts};

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/templates",
            post(create_template).get(list_templates),
        )
        .route("/api/v1/templates/preview", post(preview_template))
        .route(
            "/api/v1/templates/{name}/ab",
            axum::routing::get(ab_results),
        )
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create_template, list_templates, preview_template, ab_results),
    components(schemas(
        TemplateRequest,
        TemplateView,
        PreviewRequest,
        PreviewView,
        Variant,
        VariantResult
    ))
)]
pub struct Doc;

/// A template (version) to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    /// 1 to 100 lower-case letters, digits, `_`, `-` or `.`.
    pub name: String,
    /// The channel it renders for.
    pub channel: String,
    /// e.g. `de`, `pt-BR`; absent: the default.
    pub locale: Option<String>,
    /// Subject (or title), minijinja.
    pub subject: String,
    /// Text body, minijinja.
    pub body: String,
    /// HTML body (email), minijinja with HTML escaping.
    pub html: Option<String>,
    /// Every variable the texts use; sends must give them all.
    #[serde(default)]
    pub variables: Vec<String>,
    /// Category (default `transactional`).
    pub category: Option<String>,
    /// A/B test: variants with weights; each recipient always gets the same one.
    #[serde(default)]
    pub variants: Vec<Variant>,
}

/// A template version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    /// `tpl_…`.
    pub id: String,
    /// Name.
    pub name: String,
    /// Channel.
    pub channel: String,
    /// Locale, empty for the default.
    pub locale: String,
    /// 1, 2, …
    pub version: i64,
    /// Subject.
    pub subject: String,
    /// Text body.
    pub body: String,
    /// HTML body.
    pub html: Option<String>,
    /// Declared variables.
    pub variables: Vec<String>,
    /// Category.
    pub category: String,
    /// A/B variants.
    pub variants: Vec<Variant>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<TemplateRow> for TemplateView {
    fn from(t: TemplateRow) -> Self {
        Self {
            variables: t.variable_names(),
            variants: serde_json::from_str(&t.variants).unwrap_or_default(),
            id: t.id,
            name: t.name,
            channel: t.channel,
            locale: t.locale,
            version: t.version,
            subject: t.subject,
            body: t.body,
            html: t.html,
            category: t.category,
            created_at: rfc3339(t.created_at),
        }
    }
}

fn is_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
}

fn is_locale(locale: &str) -> bool {
    (2..=15).contains(&locale.len())
        && locale
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Checks a request; the template's texts and declared variables.
fn check(body: &TemplateRequest) -> Result<(Channel, Texts), ApiError> {
    let mut errors = Vec::new();
    if !is_name(&body.name) {
        errors.push(FieldError::new(
            "name",
            "invalid_name",
            "1 to 100 lower-case letters, digits, `_`, `-` or `.`",
        ));
    }
    let channel = Channel::parse(&body.channel);
    if channel.is_none() {
        errors.push(FieldError::new(
            "channel",
            "invalid_channel",
            "email, sms, push, in_app, webhook or chat",
        ));
    }
    if body.locale.as_ref().is_some_and(|l| !is_locale(l)) {
        errors.push(FieldError::new(
            "locale",
            "invalid_locale",
            "a language tag such as `de` or `pt-BR`",
        ));
    }
    if body
        .category
        .as_ref()
        .is_some_and(|c| !domain::is_category(c))
    {
        errors.push(FieldError::new(
            "category",
            "invalid_category",
            "1 to 40 lower-case letters, digits or `_`",
        ));
    }
    for (field, text) in [
        ("subject", Some(&body.subject)),
        ("body", Some(&body.body)),
        ("html", body.html.as_ref()),
    ] {
        if text.is_some_and(|t| t.len() > MAX_TEMPLATE_BYTES) {
            errors.push(FieldError::new(field, "too_long", "at most 64 KiB"));
        }
    }
    if body.body.trim().is_empty() {
        errors.push(FieldError::new("body", "required", "a body is required"));
    }
    if body.variables.len() > 100
        || body.variables.iter().any(|v| {
            v.is_empty()
                || v.len() > 64
                || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
    {
        errors.push(FieldError::new(
            "variables",
            "invalid",
            "up to 100 names of letters, digits and `_`",
        ));
    }
    let Some(channel) = channel.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let texts = Texts {
        subject: body.subject.clone(),
        body: body.body.clone(),
        html: body.html.clone(),
    };
    templates::validate(&texts, &body.variables)
        .map_err(|e| ApiError::invalid_field("variables", "template_invalid", e.to_string()))?;
    if body.variants.len() == 1 || body.variants.len() > 10 {
        return Err(ApiError::invalid_field(
            "variants",
            "invalid_length",
            "none, or 2 to 10 variants",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for (i, v) in body.variants.iter().enumerate() {
        if v.name.is_empty() || v.name.len() > 40 || !names.insert(v.name.as_str()) {
            return Err(ApiError::invalid_field(
                format!("variants[{i}].name"),
                "invalid_name",
                "1 to 40 characters, each name once",
            ));
        }
        if !(1..=10_000).contains(&v.weight) {
            return Err(ApiError::invalid_field(
                format!("variants[{i}].weight"),
                "out_of_range",
                "1 to 10000",
            ));
        }
        let texts = Texts {
            subject: v.subject.clone(),
            body: v.body.clone(),
            html: v.html.clone(),
        };
        templates::validate(&texts, &body.variables).map_err(|e| {
            ApiError::invalid_field(format!("variants[{i}]"), "template_invalid", e.to_string())
        })?;
    }
    Ok((channel, texts))
}

/// Create a template, or a new version of one (staff). A text using a variable the request
/// does not declare is refused here, not at send time.
#[utoipa::path(
    post, path = "/api/v1/templates", tag = "templates",
    request_body = TemplateRequest,
    responses((status = 201, body = TemplateView), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn create_template(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Json(body): Json<TemplateRequest>,
) -> Result<(StatusCode, axum::Json<TemplateView>), ApiError> {
    let (channel, texts) = check(&body)?;
    let locale = body.locale.clone().unwrap_or_default();
    let mut conn = state.db.pool().acquire().await?;
    // Two creates racing for one version: the loser retries with the next number.
    for _ in 0..5 {
        let version = store::latest_template(&mut conn, &body.name, channel.as_str(), &locale)
            .await?
            .map_or(1, |t| t.version + 1);
        let row = TemplateRow {
            id: mercato_kernel::id::new_id("tpl"),
            name: body.name.clone(),
            channel: channel.as_str().to_owned(),
            locale: locale.clone(),
            version,
            subject: texts.subject.clone(),
            body: texts.body.clone(),
            html: texts.html.clone(),
            variables: serde_json::to_string(&body.variables).map_err(ApiError::internal)?,
            category: body
                .category
                .clone()
                .unwrap_or_else(|| TRANSACTIONAL.to_owned()),
            variants: serde_json::to_string(&body.variants).map_err(ApiError::internal)?,
            created_at: now_micros(),
        };
        match store::insert_template(&mut conn, &row).await {
            Ok(()) => return Ok((StatusCode::CREATED, axum::Json(row.into()))),
            Err(e) if is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "concurrent_update",
        "the template changed meanwhile; retry",
    ))
}

/// The newest version of every template.
#[utoipa::path(
    get, path = "/api/v1/templates", tag = "templates",
    responses((status = 200, body = [TemplateView])),
    security(("bearer" = []))
)]
async fn list_templates(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
) -> Result<axum::Json<Vec<TemplateView>>, ApiError> {
    let rows = store::list_templates(&mut *state.db.pool().acquire().await?).await?;
    Ok(axum::Json(rows.into_iter().map(Into::into).collect()))
}

/// A template to render without sending.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Template name.
    pub name: String,
    /// Its channel.
    pub channel: String,
    /// Locale.
    pub locale: Option<String>,
    /// Variables.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// What a template renders to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewView {
    /// Subject.
    pub subject: String,
    /// Text body.
    pub body: String,
    /// HTML body.
    pub html: Option<String>,
    /// The version rendered.
    pub version: i64,
}

/// Render a template with data (staff).
#[utoipa::path(
    post, path = "/api/v1/templates/preview", tag = "templates",
    request_body = PreviewRequest,
    responses((status = 200, body = PreviewView), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn preview_template(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    Json(body): Json<PreviewRequest>,
) -> Result<axum::Json<PreviewView>, ApiError> {
    let channel = Channel::parse(&body.channel).ok_or_else(|| {
        ApiError::invalid_field(
            "channel",
            "invalid_channel",
            "email, sms, push, in_app, webhook or chat",
        )
    })?;
    let locale = body.locale.unwrap_or_default();
    let mut conn = state.db.pool().acquire().await?;
    let mut found =
        store::latest_template(&mut conn, &body.name, channel.as_str(), &locale).await?;
    if found.is_none() && !locale.is_empty() {
        found = store::latest_template(&mut conn, &body.name, channel.as_str(), "").await?;
    }
    let t = found.ok_or_else(|| {
        ApiError::invalid_field(
            "name",
            "unknown_template",
            format!("no {} template `{}`", channel.as_str(), body.name),
        )
    })?;
    let source = Texts {
        subject: t.subject.clone(),
        body: t.body.clone(),
        html: t.html.clone(),
    };
    let out = templates::render(&source, &t.variable_names(), &body.data)
        .map_err(|e| ApiError::invalid_field("data", "render_failed", e.to_string()))?;
    Ok(axum::Json(PreviewView {
        subject: out.subject,
        body: out.body,
        html: out.html,
        version: t.version,
    }))
}

/// `?channel=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AbQuery {
    /// The template's channel (default `email`).
    pub channel: Option<String>,
}

/// How one variant did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantResult {
    /// Variant name.
    pub variant: String,
    /// Taken by a provider.
    pub sent: i64,
    /// Confirmed delivered.
    pub delivered: i64,
    /// Opened (email pixel, or a click).
    pub opened: i64,
    /// Clicked a tracked link.
    pub clicked: i64,
}

/// Per-variant results of a template's A/B test (staff).
#[utoipa::path(
    get, path = "/api/v1/templates/{name}/ab", tag = "templates",
    params(("name" = String, Path), AbQuery),
    responses((status = 200, body = [VariantResult]), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn ab_results(
    State(state): State<AppState>,
    _: RequireRole<Staff>,
    mercato_kernel::Path(name): mercato_kernel::Path<String>,
    mercato_kernel::Query(query): mercato_kernel::Query<AbQuery>,
) -> Result<axum::Json<Vec<VariantResult>>, ApiError> {
    let channel = Channel::parse(query.channel.as_deref().unwrap_or("email")).ok_or_else(|| {
        ApiError::invalid_field(
            "channel",
            "invalid_channel",
            "email, sms, push, in_app, webhook or chat",
        )
    })?;
    let rows = store::ab_counts(
        &mut *state.db.pool().acquire().await?,
        &name,
        channel.as_str(),
    )
    .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(
                |(variant, sent, delivered, opened, clicked)| VariantResult {
                    variant,
                    sent,
                    delivered,
                    opened,
                    clicked,
                },
            )
            .collect(),
    ))
}
