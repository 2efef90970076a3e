//! What identity publishes, always through the outbox in the business transaction.

use mercato_bus::Event;
use mercato_contracts::subjects;
use mercato_kernel::ApiError;
use mercato_store::Tx;
use serde_json::json;

use crate::domain::user::User;

/// Email template of an address verification.
pub const VERIFY_EMAIL_TEMPLATE: &str = "verify_email";
/// Email template of a password reset.
pub const PASSWORD_RESET_TEMPLATE: &str = "password_reset";

async fn enqueue(tx: &mut Tx, event: Result<Event, mercato_bus::BusError>) -> Result<(), ApiError> {
    let event = event.map_err(ApiError::internal)?;
    mercato_bus::enqueue(tx, &event)
        .await
        .map_err(ApiError::internal)
}

/// `user.registered`.
pub async fn user_registered(tx: &mut Tx, user: &User) -> Result<(), ApiError> {
    let data = json!({"user_id": user.id, "email": user.email, "name": user.name});
    let event = Event::new(crate::SOURCE, subjects::USER_REGISTERED, data)
        .map(|e| e.with_subject(user.id.clone()));
    enqueue(tx, event).await
}

/// `user.password_reset_requested` (no token in it: only the email carries the secret).
pub async fn password_reset_requested(tx: &mut Tx, user: &User) -> Result<(), ApiError> {
    let data = json!({"user_id": user.id, "email": user.email});
    let event = Event::new(crate::SOURCE, subjects::USER_PASSWORD_RESET_REQUESTED, data)
        .map(|e| e.with_subject(user.id.clone()));
    enqueue(tx, event).await
}

/// `notification.email` asking notifications to send `template` to the user with `token`.
pub async fn email(
    tx: &mut Tx,
    user: &User,
    template: &str,
    token: &str,
    expires_in_seconds: i64,
) -> Result<(), ApiError> {
    let data = json!({
        "to": user.email,
        "template": template,
        "variables": {
            "name": user.name,
            "token": token,
            "user_id": user.id,
            "expires_in_seconds": expires_in_seconds,
        },
    });
    let event = Event::new(crate::SOURCE, subjects::NOTIFICATION_EMAIL, data)
        .map(|e| e.with_subject(user.id.clone()));
    enqueue(tx, event).await
}
