//! `/api/v1/preferences/{user_id}`: which categories a user receives on which channel, and
//! their quiet hours. The user themselves or staff; `transactional` cannot be turned off.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use mercato_kernel::auth::{Claims, Role};
use mercato_kernel::error::Problem;
use mercato_kernel::{ApiError, FieldError, Json, Path};
use mercato_store::now_micros;
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::domain::{self, Channel, TRANSACTIONAL};
use crate::store;

/// Routes of this resource.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/preferences/{user_id}",
        get(get_preferences).put(put_preferences),
    )
}

/// OpenAPI of this resource.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_preferences, put_preferences),
    components(schemas(Preference, QuietHoursView, PreferencesView))
)]
pub struct Doc;

/// One category on one channel.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preference {
    /// e.g. `marketing`.
    pub category: String,
    /// Channel.
    pub channel: String,
    /// Whether to receive it.
    pub enabled: bool,
}

/// Quiet hours: non-urgent messages wait until they end.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursView {
    /// `HH:MM` local time.
    pub start: String,
    /// `HH:MM` local time (before `start`: over midnight).
    pub end: String,
    /// The user's offset from UTC in minutes, −840 to 840.
    pub utc_offset_minutes: i64,
}

/// A user's preferences.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesView {
    /// Settings that differ from the default (everything on).
    #[serde(default)]
    pub preferences: Vec<Preference>,
    /// Quiet hours; `null` removes them.
    pub quiet_hours: Option<QuietHoursView>,
}

fn allowed(claims: &Claims, user_id: &str) -> Result<(), ApiError> {
    if claims.sub == user_id || claims.has_role(Role::Staff) {
        Ok(())
    } else {
        Err(ApiError::not_found("preferences"))
    }
}

fn minute(field: &str, hhmm: &str) -> Result<i64, FieldError> {
    let bad = || FieldError::new(field, "invalid_time", "`HH:MM`, 00:00 to 23:59");
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if (0..24).contains(&h) && (0..60).contains(&m) && hhmm.len() == 5 {
        Ok(h * 60 + m)
    } else {
        Err(bad())
    }
}

/// A user's preferences.
#[utoipa::path(
    get, path = "/api/v1/preferences/{user_id}", tag = "preferences",
    params(("user_id" = String, Path)),
    responses((status = 200, body = PreferencesView), (status = 404, body = Problem)),
    security(("bearer" = []))
)]
async fn get_preferences(
    State(state): State<AppState>,
    claims: Claims,
    Path(user_id): Path<String>,
) -> Result<axum::Json<PreferencesView>, ApiError> {
    allowed(&claims, &user_id)?;
    let mut conn = state.db.pool().acquire().await?;
    let preferences = store::preferences_of(&mut conn, &user_id)
        .await?
        .into_iter()
        .map(|(category, channel, enabled)| Preference {
            category,
            channel,
            enabled: enabled == 1,
        })
        .collect();
    let quiet_hours = store::quiet_hours(&mut conn, &user_id)
        .await?
        .map(|(s, e, o)| QuietHoursView {
            start: format!("{:02}:{:02}", s / 60, s % 60),
            end: format!("{:02}:{:02}", e / 60, e % 60),
            utc_offset_minutes: o,
        });
    Ok(axum::Json(PreferencesView {
        preferences,
        quiet_hours,
    }))
}

/// Set a user's preferences (the user or staff): listed categories and channels change, the
/// rest stay; quiet hours are replaced.
#[utoipa::path(
    put, path = "/api/v1/preferences/{user_id}", tag = "preferences",
    params(("user_id" = String, Path)),
    request_body = PreferencesView,
    responses((status = 200, body = PreferencesView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []))
)]
async fn put_preferences(
    State(state): State<AppState>,
    claims: Claims,
    Path(user_id): Path<String>,
    Json(body): Json<PreferencesView>,
) -> Result<axum::Json<PreferencesView>, ApiError> {
    allowed(&claims, &user_id)?;
    let mut errors = Vec::new();
    if body.preferences.len() > 200 {
        errors.push(FieldError::new("preferences", "too_many", "at most 200"));
    }
    for (i, p) in body.preferences.iter().enumerate() {
        if !domain::is_category(&p.category) {
            errors.push(FieldError::new(
                format!("preferences[{i}].category"),
                "invalid_category",
                "1 to 40 lower-case letters, digits or `_`",
            ));
        } else if p.category == TRANSACTIONAL && !p.enabled {
            errors.push(FieldError::new(
                format!("preferences[{i}].enabled"),
                "not_optional",
                "transactional messages cannot be turned off",
            ));
        }
        if Channel::parse(&p.channel).is_none() {
            errors.push(FieldError::new(
                format!("preferences[{i}].channel"),
                "invalid_channel",
                "email, sms, push, in_app, webhook or chat",
            ));
        }
    }
    let hours = match &body.quiet_hours {
        None => None,
        Some(q) => {
            let start = minute("quiet_hours.start", &q.start)
                .map_err(|e| errors.push(e))
                .ok();
            let end = minute("quiet_hours.end", &q.end)
                .map_err(|e| errors.push(e))
                .ok();
            if !(-840..=840).contains(&q.utc_offset_minutes) {
                errors.push(FieldError::new(
                    "quiet_hours.utc_offset_minutes",
                    "out_of_range",
                    "−840 to 840",
                ));
            }
            start.zip(end).map(|(s, e)| (s, e, q.utc_offset_minutes))
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = now_micros();
    let mut tx = state.db.begin().await?;
    for p in &body.preferences {
        store::set_preference(&mut tx, &user_id, &p.category, &p.channel, p.enabled, now).await?;
    }
    store::set_quiet_hours(&mut tx, &user_id, hours, now).await?;
    tx.commit().await?;
    get_preferences(State(state), claims, Path(user_id)).await
}
