//! Turning a send request (template + data, or inline text) into a queued notification: the
//! recipient resolved, the template rendered and checked, the idempotency key honoured.

use mercato_kernel::{ApiError, FieldError};
use mercato_store::{is_unique_violation, now_micros};
use serde_json::Value;
use sqlx::AnyConnection;

use crate::domain::{self, Channel, Status, TRANSACTIONAL};
use crate::links::Links;
use crate::store::{self, NotificationRow};
use crate::templates::{self, Globals, TemplateError, Texts};

/// Longest inline subject, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 1000;
/// Longest inline or rendered body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct Send {
    /// The channel.
    pub channel: Option<Channel>,
    /// Recipient user (addresses come from what identity told us, in-app goes to them).
    pub user_id: Option<String>,
    /// Explicit address: email, E.164 phone, device token or URL.
    pub to: Option<String>,
    /// Template name.
    pub template: Option<String>,
    /// Template locale, e.g. `de`; the default locale when absent or unknown.
    pub locale: Option<String>,
    /// Template variables.
    pub data: Value,
    /// Inline subject.
    pub subject: Option<String>,
    /// Inline text body.
    pub body: Option<String>,
    /// Inline HTML body.
    pub html: Option<String>,
    /// Category; the template's, else `transactional`.
    pub category: Option<String>,
    /// Ignores quiet hours.
    pub urgent: bool,
    /// Caller-scoped key: the same key answers the same notification.
    pub idempotency_key: Option<String>,
}

/// Queues `send` on `conn` (a consumer's transaction, or a pooled connection); returns the
/// notification (an existing one for a repeated key).
pub async fn queue(
    conn: &mut AnyConnection,
    links: &Links,
    send: Send,
) -> Result<NotificationRow, ApiError> {
    let id = mercato_kernel::id::new_id("ntf");
    if let Some(key) = &send.idempotency_key
        && let Some(existing) = store::find_by_key(conn, key).await?
    {
        return Ok(existing);
    }
    let mut errors = Vec::new();
    let Some(channel) = send.channel else {
        return Err(ApiError::invalid_field(
            "channel",
            "invalid_channel",
            "email, sms, push, in_app, webhook or chat",
        ));
    };
    if let Some(category) = &send.category
        && !domain::is_category(category)
    {
        errors.push(FieldError::new(
            "category",
            "invalid_category",
            "1 to 40 lower-case letters, digits or `_`",
        ));
    }
    if send
        .user_id
        .as_ref()
        .is_some_and(|u| u.is_empty() || u.len() > 64)
    {
        errors.push(FieldError::new(
            "user_id",
            "invalid_length",
            "1 to 64 characters",
        ));
    }
    let recipient = match (&send.to, &send.user_id, channel) {
        (_, Some(user), Channel::InApp) => Some(user.clone()),
        (Some(to), _, _) => Some(to.trim().to_owned()),
        (None, Some(user), Channel::Email | Channel::Sms) => {
            let contact = store::contact(conn, user).await?;
            let address = contact.and_then(|(email, phone)| {
                if channel == Channel::Email {
                    email
                } else {
                    phone
                }
            });
            if address.is_none() {
                errors.push(FieldError::new(
                    "to",
                    "unknown_address",
                    format!("no {} address is known for user `{user}`", channel.as_str()),
                ));
            }
            address
        }
        _ => {
            errors.push(FieldError::new(
                "to",
                "required",
                "`to` (or `user_id`) is required",
            ));
            None
        }
    };
    if let Some(to) = &recipient
        && !domain::is_recipient(channel, to)
    {
        let what = match channel {
            Channel::Email => "an email address",
            Channel::Sms => "an E.164 phone number such as +4915112345678",
            Channel::Push => "a device token",
            Channel::InApp => "a user id",
            Channel::Webhook | Channel::Chat => "an http(s) URL",
        };
        errors.push(FieldError::new(
            "to",
            "invalid_recipient",
            format!("expected {what}"),
        ));
    }
    let (texts, template, version, category, variant) = match &send.template {
        Some(name) => {
            let locale = send.locale.clone().unwrap_or_default();
            let mut found = store::latest_template(conn, name, channel.as_str(), &locale).await?;
            if found.is_none() && !locale.is_empty() {
                found = store::latest_template(conn, name, channel.as_str(), "").await?;
            }
            let Some(t) = found else {
                return Err(ApiError::invalid_field(
                    "template",
                    "unknown_template",
                    format!("no {} template `{name}`", channel.as_str()),
                ));
            };
            if !send.data.is_object() {
                errors.push(FieldError::new(
                    "data",
                    "invalid",
                    "an object of the template's variables",
                ));
            }
            if !errors.is_empty() {
                return Err(ApiError::validation(errors));
            }
            let category = send.category.clone().unwrap_or_else(|| t.category.clone());
            let variants: Vec<Variant> = serde_json::from_str(&t.variants).unwrap_or_default();
            let recipient_key = recipient.clone().unwrap_or_default();
            let (source, variant) = match pick(&variants, &t.name, &recipient_key) {
                Some(v) => (
                    Texts {
                        subject: v.subject.clone(),
                        body: v.body.clone(),
                        html: v.html.clone(),
                    },
                    Some(v.name.clone()),
                ),
                None => (
                    Texts {
                        subject: t.subject.clone(),
                        body: t.body.clone(),
                        html: t.html.clone(),
                    },
                    None,
                ),
            };
            let globals = Globals {
                links: Some((links.clone(), id.clone())),
                unsubscribe_url: match &send.user_id {
                    Some(user) if category != TRANSACTIONAL => links.unsubscribe(user, &category),
                    _ => String::new(),
                },
            };
            let rendered =
                templates::render_with(&source, &t.variable_names(), &send.data, &globals)
                    .map_err(|e| match e {
                        TemplateError::Missing(names) => ApiError::invalid_field(
                            "data",
                            "missing_variables",
                            format!("the template needs: {names}"),
                        ),
                        other => {
                            ApiError::invalid_field("data", "render_failed", other.to_string())
                        }
                    })?;
            (
                rendered,
                Some(t.name.clone()),
                Some(t.version),
                category,
                variant,
            )
        }
        None => {
            let subject = send.subject.clone().unwrap_or_default();
            let body = send.body.clone().unwrap_or_default();
            if body.is_empty() {
                errors.push(FieldError::new(
                    "body",
                    "required",
                    "a `template`, or a `body`",
                ));
            }
            if subject.len() > MAX_SUBJECT_BYTES {
                errors.push(FieldError::new(
                    "subject",
                    "too_long",
                    "at most 1,000 bytes",
                ));
            }
            if channel == Channel::Email && subject.trim().is_empty() {
                errors.push(FieldError::new(
                    "subject",
                    "required",
                    "emails need a subject",
                ));
            }
            let texts = Texts {
                subject,
                body,
                html: send.html.clone(),
            };
            (
                texts,
                None,
                None,
                send.category
                    .clone()
                    .unwrap_or_else(|| TRANSACTIONAL.to_owned()),
                None,
            )
        }
    };
    if texts.body.len() > MAX_BODY_BYTES
        || texts
            .html
            .as_ref()
            .is_some_and(|h| h.len() > MAX_BODY_BYTES)
    {
        errors.push(FieldError::new("body", "too_long", "at most 256 KiB"));
    }
    let Some(recipient) = recipient.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let mut texts = texts;
    if channel == Channel::Email
        && let Some(html) = &mut texts.html
    {
        html.push_str(&format!(
            r#"<img src="{}" width="1" height="1" alt="" style="display:none">"#,
            links.open_pixel(&id)
        ));
    }
    let now = now_micros();
    let row = NotificationRow {
        id,
        channel: channel.as_str().to_owned(),
        user_id: send.user_id.clone(),
        recipient,
        template,
        template_version: version,
        category,
        subject: texts.subject,
        body: texts.body,
        html: texts.html,
        data: send.data.to_string(),
        status: Status::Queued.as_str().to_owned(),
        urgent: i64::from(send.urgent),
        provider: None,
        provider_message_id: None,
        attempts: 0,
        next_attempt_at: now,
        claimed_until: None,
        last_error: None,
        idempotency_key: send.idempotency_key.clone(),
        created_at: now,
        updated_at: now,
        sent_at: None,
        read_at: None,
        variant,
        opened_at: None,
        clicked_at: None,
    };
    match store::insert_notification(conn, &row).await {
        Ok(()) => Ok(row),
        Err(e) if is_unique_violation(&e) => {
            let key = send.idempotency_key.unwrap_or_default();
            store::find_by_key(conn, &key)
                .await?
                .ok_or_else(|| ApiError::conflict("concurrent_update", "retry"))
        }
        Err(e) => Err(e.into()),
    }
}

/// One A/B variant of a template.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// `a`, `b`, … (1 to 40 characters).
    pub name: String,
    /// Relative share of recipients, 1 to 10 000.
    pub weight: u32,
    /// Subject.
    pub subject: String,
    /// Text body.
    pub body: String,
    /// HTML body.
    #[serde(default)]
    pub html: Option<String>,
}

/// The variant `recipient` gets for `template`: chosen by weight from a hash of the two, so
/// the same recipient always gets the same variant.
pub fn pick<'a>(variants: &'a [Variant], template: &str, recipient: &str) -> Option<&'a Variant> {
    use sha2::{Digest, Sha256};
    let total: u64 = variants.iter().map(|v| u64::from(v.weight)).sum();
    if total == 0 {
        return None;
    }
    let digest = Sha256::digest(format!("{template}\n{recipient}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let mut point = u64::from_be_bytes(first) % total;
    for v in variants {
        let w = u64::from(v.weight);
        if point < w {
            return Some(v);
        }
        point -= w;
    }
    variants.last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(name: &str, weight: u32) -> Variant {
        Variant {
            name: name.into(),
            weight,
            subject: name.into(),
            body: name.into(),
            html: None,
        }
    }

    #[test]
    fn assignment_is_sticky_and_follows_the_weights() {
        let variants = [variant("a", 80), variant("b", 20)];
        let mut a = 0;
        for n in 0..10_000 {
            let who = format!("user{n}@example.com");
            let first = pick(&variants, "promo", &who).map(|v| v.name.clone());
            assert_eq!(
                first,
                pick(&variants, "promo", &who).map(|v| v.name.clone()),
                "sticky"
            );
            if first.as_deref() == Some("a") {
                a += 1;
            }
        }
        assert!(
            (7_700..=8_300).contains(&a),
            "80 % expected, got {a} of 10,000"
        );
        assert_eq!(pick(&[], "promo", "x"), None);
    }
}
