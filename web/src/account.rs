//! The shopper's account: sign up, sign in and out, password reset, orders, addresses,
//! notification preferences and the in-app inbox.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::Call;
use crate::session::{CART, Form, REFRESH, SESSION, Visitor, session_cookies, set_cookie};
use crate::shop::{cart_cookie, segment};
use crate::{Page, WebState, see_other};

/// Marketing messages a shopper may opt out of, per channel (transactional ones always go).
const MARKETING_CHANNELS: [&str; 4] = ["email", "sms", "push", "in_app"];

/// Fields of the sign-in form.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub(crate) struct LoginForm {
    email: String,
    #[serde(skip_serializing)]
    password: String,
    next: String,
    #[serde(skip_serializing)]
    name: String,
}

/// Query of the sign-in page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Next {
    next: String,
}

/// Only local paths: a `next` never sends the visitor to another site.
fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/account"
    }
}

pub(crate) async fn login_form(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(next): Query<Next>,
) -> Page {
    let form = LoginForm {
        next: next.next,
        ..LoginForm::default()
    };
    Page::render(&state, &visitor, "shop/login.html", json!({ "form": form }))
}

pub(crate) async fn register_form(State(state): State<WebState>, visitor: Visitor) -> Page {
    Page::render(
        &state,
        &visitor,
        "shop/register.html",
        json!({ "form": LoginForm::default() }),
    )
}

/// Signs the visitor in with `tokens` and brings their guest cart along.
async fn signed_in(state: &WebState, visitor: &Visitor, tokens: &Value, next: &str) -> Response {
    let access = tokens["access_token"].as_str().unwrap_or_default();
    let mut cookies = session_cookies(state, tokens);
    if let Some(guest) = visitor.cart.as_deref() {
        let merged = Call::new(
            Method::POST,
            format!("/api/v1/carts/{}/merge", segment(guest)),
        )
        .json(json!({}))
        .token(Some(access))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
        if merged.ok() {
            cookies.extend(cart_cookie(state, &merged.body));
        }
    }
    see_other(local_path(next), cookies)
}

pub(crate) async fn login(State(state): State<WebState>, form: Form<LoginForm>) -> Response {
    let Form { visitor, fields } = form;
    let answer = Call::new(Method::POST, "/api/v1/auth/login")
        .json(json!({ "email": fields.email.trim(), "password": fields.password }))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    if !answer.ok() {
        let error = if answer.status == StatusCode::UNAUTHORIZED {
            "The email or password is not right.".to_owned()
        } else {
            answer.message()
        };
        return Page::render(
            &state,
            &visitor,
            "shop/login.html",
            json!({ "form": fields, "error": error }),
        )
        .with_status(answer.status)
        .into_response();
    }
    signed_in(&state, &visitor, &answer.body, &fields.next).await
}

pub(crate) async fn register(State(state): State<WebState>, form: Form<LoginForm>) -> Response {
    let Form { visitor, fields } = form;
    let answer = Call::new(Method::POST, "/api/v1/auth/register")
        .json(json!({
            "email": fields.email.trim(),
            "password": fields.password,
            "name": fields.name.trim(),
        }))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    if !answer.ok() {
        return Page::render(
            &state,
            &visitor,
            "shop/register.html",
            json!({ "form": fields, "error": answer.message() }),
        )
        .with_status(answer.status)
        .into_response();
    }
    signed_in(&state, &visitor, &answer.body, "/account").await
}

pub(crate) async fn logout(State(state): State<WebState>, form: Form<Value>) -> Response {
    let Form { visitor, .. } = form;
    if let Some(refresh) = visitor.refresh.as_deref() {
        // Revokes the refresh token; the access token lapses on its own within minutes.
        Call::new(Method::POST, "/api/v1/auth/logout")
            .json(json!({ "refresh_token": refresh }))
            .for_visitor(&visitor)
            .send(&state.api)
            .await;
    }
    let cookies = [SESSION, REFRESH, CART]
        .into_iter()
        .filter_map(|name| set_cookie(&state, name, "", Some(0)))
        .collect();
    see_other("/", cookies)
}

pub(crate) async fn account(State(state): State<WebState>, visitor: Visitor) -> Response {
    let Some(token) = visitor.token.as_deref() else {
        return see_other("/login?next=/account", Vec::new());
    };
    let me = Call::get("/api/v1/users/me")
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if me.status == StatusCode::UNAUTHORIZED {
        return see_other("/login?next=/account", Vec::new());
    }
    let orders = Call::get("/api/v1/orders?limit=20")
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    let orders = orders.body.get("data").cloned().unwrap_or(json!([]));
    let user_id = me.body["id"].as_str().unwrap_or_default();
    let preferences = Call::get(format!("/api/v1/preferences/{}", segment(user_id)))
        .token(Some(token))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    let inbox = Call::get("/api/v1/notifications/inbox?limit=20")
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    let addresses = saved_addresses(&state, &visitor).await;
    Page::render(
        &state,
        &visitor,
        "shop/account.html",
        json!({
            "me": me.body,
            "addresses": addresses,
            "orders": orders,
            "marketing": marketing_choices(&preferences.body),
            "inbox": inbox.body,
        }),
    )
    .into_response()
}

/// The signed-in visitor's address book, newest first (empty for anyone else).
pub(crate) async fn saved_addresses(state: &WebState, visitor: &Visitor) -> Vec<Value> {
    if visitor.token.is_none() {
        return Vec::new();
    }
    let answer = Call::get("/api/v1/users/me/addresses")
        .for_visitor(visitor)
        .send(&state.api)
        .await;
    answer.body.as_array().cloned().unwrap_or_default()
}

/// Fields of the new-address form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AddressForm {
    pub(crate) label: String,
    pub(crate) name: String,
    pub(crate) line1: String,
    pub(crate) line2: String,
    pub(crate) city: String,
    pub(crate) postal_code: String,
    pub(crate) country: String,
}

impl AddressForm {
    /// The address as the API takes it; an empty second line is left out.
    pub(crate) fn address(&self) -> Value {
        let mut address = json!({
            "name": self.name.trim(),
            "line1": self.line1.trim(),
            "city": self.city.trim(),
            "postal_code": self.postal_code.trim(),
            "country": self.country.trim().to_ascii_uppercase(),
        });
        if !self.line2.trim().is_empty() {
            address["line2"] = Value::from(self.line2.trim());
        }
        address
    }
}

pub(crate) async fn add_address(
    State(state): State<WebState>,
    form: Form<AddressForm>,
) -> Response {
    let Form { visitor, fields } = form;
    if visitor.token.is_none() {
        return see_other("/login?next=/account", Vec::new());
    }
    let answer = Call::new(Method::POST, "/api/v1/users/me/addresses")
        .json(json!({ "label": fields.label.trim(), "address": fields.address() }))
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    if !answer.ok() {
        let message = format!("The address was not saved: {}", answer.message());
        return Page::error(&state, &visitor, 422, &message).into_response();
    }
    see_other("/account#addresses-heading", Vec::new())
}

pub(crate) async fn delete_address(
    State(state): State<WebState>,
    Path(id): Path<String>,
    form: Form<AddressForm>,
) -> Response {
    let Form { visitor, .. } = form;
    if visitor.token.is_none() {
        return see_other("/login?next=/account", Vec::new());
    }
    let answer = Call::new(
        Method::DELETE,
        format!("/api/v1/users/me/addresses/{}", segment(&id)),
    )
    .for_visitor(&visitor)
    .send(&state.api)
    .await;
    if !answer.ok() {
        return Page::error(&state, &visitor, 404, "There is no such address.").into_response();
    }
    see_other("/account#addresses-heading", Vec::new())
}

/// Per channel, whether marketing messages are wanted (unset: yes).
fn marketing_choices(preferences: &Value) -> Vec<Value> {
    let list = preferences["preferences"].as_array();
    MARKETING_CHANNELS
        .iter()
        .map(|channel| {
            let enabled = list
                .into_iter()
                .flatten()
                .find(|p| p["category"] == "marketing" && p["channel"] == *channel)
                .and_then(|p| p["enabled"].as_bool())
                .unwrap_or(true);
            json!({ "channel": channel, "enabled": enabled })
        })
        .collect()
}

/// Fields of the preferences form: the channels left checked.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PreferencesForm {
    email: Option<String>,
    sms: Option<String>,
    push: Option<String>,
    in_app: Option<String>,
}

pub(crate) async fn save_preferences(
    State(state): State<WebState>,
    form: Form<PreferencesForm>,
) -> Response {
    let Form { visitor, fields } = form;
    if visitor.token.is_none() {
        return see_other("/login?next=/account", Vec::new());
    }
    let me = Call::get("/api/v1/users/me")
        .for_visitor(&visitor)
        .send(&state.api)
        .await;
    let user_id = me.body["id"].as_str().unwrap_or_default().to_owned();
    let checked = [&fields.email, &fields.sms, &fields.push, &fields.in_app];
    let preferences: Vec<Value> = MARKETING_CHANNELS
        .iter()
        .zip(checked)
        .map(|(channel, on)| json!({ "category": "marketing", "channel": channel, "enabled": on.is_some() }))
        .collect();
    let answer = Call::new(
        Method::PUT,
        format!("/api/v1/preferences/{}", segment(&user_id)),
    )
    .json(json!({ "preferences": preferences }))
    .for_visitor(&visitor)
    .send(&state.api)
    .await;
    if !answer.ok() {
        return Page::error(&state, &visitor, 422, &answer.message()).into_response();
    }
    see_other("/account#preferences", Vec::new())
}

/// Fields of the password reset forms.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub(crate) struct ResetForm {
    email: String,
    token: String,
    #[serde(skip_serializing)]
    new_password: String,
}

pub(crate) async fn reset_form(
    State(state): State<WebState>,
    visitor: Visitor,
    Query(form): Query<ResetForm>,
) -> Page {
    Page::render(&state, &visitor, "shop/reset.html", json!({ "form": form }))
}

/// Step one (an email: the code is sent) or two (code and new password: it is set).
pub(crate) async fn reset(State(state): State<WebState>, form: Form<ResetForm>) -> Response {
    let Form { visitor, fields } = form;
    if fields.token.trim().is_empty() {
        let answer = Call::new(Method::POST, "/api/v1/auth/password-reset/request")
            .json(json!({ "email": fields.email.trim() }))
            .peer(visitor.peer)
            .send(&state.api)
            .await;
        let (sent, error) = if answer.ok() {
            (true, None)
        } else {
            (false, Some(answer.message()))
        };
        return Page::render(
            &state,
            &visitor,
            "shop/reset.html",
            json!({ "form": fields, "sent": sent, "error": error }),
        )
        .with_status(if sent { StatusCode::OK } else { answer.status })
        .into_response();
    }
    let answer = Call::new(Method::POST, "/api/v1/auth/password-reset")
        .json(json!({ "token": fields.token.trim(), "new_password": fields.new_password }))
        .peer(visitor.peer)
        .send(&state.api)
        .await;
    if !answer.ok() {
        return Page::render(
            &state,
            &visitor,
            "shop/reset.html",
            json!({ "form": fields, "sent": true, "error": answer.message() }),
        )
        .with_status(answer.status)
        .into_response();
    }
    see_other("/login?reset=1", Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_leaves_out_an_empty_second_line() {
        let form = AddressForm {
            name: " Ada ".into(),
            line2: " ".into(),
            country: "de".into(),
            ..AddressForm::default()
        };
        let address = form.address();
        assert_eq!(address["name"], "Ada");
        assert_eq!(address["country"], "DE");
        assert!(address.get("line2").is_none());
    }

    #[test]
    fn next_never_leaves_the_shop() {
        assert_eq!(local_path("/cart"), "/cart");
        assert_eq!(local_path("//evil.example"), "/account");
        assert_eq!(local_path("https://evil.example"), "/account");
        assert_eq!(local_path("/\\evil"), "/account");
    }

    #[test]
    fn marketing_is_wanted_unless_turned_off() {
        let prefs = json!({ "preferences": [{ "category": "marketing", "channel": "sms", "enabled": false }] });
        let choices = marketing_choices(&prefs);
        assert_eq!(choices[0]["enabled"], true);
        assert_eq!(choices[1], json!({ "channel": "sms", "enabled": false }));
    }
}
