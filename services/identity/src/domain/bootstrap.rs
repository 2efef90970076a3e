//! The first admin, from `MERCATO_BOOTSTRAP_ADMIN_EMAIL` / `MERCATO_BOOTSTRAP_ADMIN_PASSWORD`.
//!
//! Created at start only when no admin exists and both variables are set; there is never a
//! default password. When an account with that email already exists (someone may have
//! registered it first), it is promoted and its password *replaced* by the configured one,
//! and its sessions end: whoever registered it does not get admin rights.

use anyhow::Context as _;
use mercato_kernel::auth::Role;
use mercato_store::now_micros;

use crate::accounts::{self, NewAccount};
use crate::api::AppState;
use crate::domain::email::Email;
use crate::domain::password::{self, Password};
use crate::domain::user::{Name, Roles};
use crate::store;

/// Creates (or promotes) the bootstrap admin when configured and no admin exists.
pub async fn ensure_admin(state: &AppState) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (
        state.config.mercato_bootstrap_admin_email.as_deref(),
        state
            .config
            .mercato_bootstrap_admin_password
            .as_ref()
            .map(|p| p.expose()),
    ) else {
        if state.config.mercato_bootstrap_admin_email.is_some() {
            tracing::warn!(
                "MERCATO_BOOTSTRAP_ADMIN_EMAIL is set without a password; no admin created"
            );
        }
        return Ok(());
    };
    if store::users::any_admin(&state.db).await? {
        return Ok(());
    }
    let email = Email::parse(email, "MERCATO_BOOTSTRAP_ADMIN_EMAIL")
        .map_err(|e| anyhow::anyhow!("MERCATO_BOOTSTRAP_ADMIN_EMAIL: {}", e.message))?;
    let password = Password::parse(password, "MERCATO_BOOTSTRAP_ADMIN_PASSWORD")
        .map_err(|e| anyhow::anyhow!("MERCATO_BOOTSTRAP_ADMIN_PASSWORD: {}", e.message))?;
    if let Some(mut user) = store::users::by_email(&state.db, email.as_str()).await? {
        tracing::warn!(user_id = %user.id, "promoting the existing account of the bootstrap admin email; its password is replaced");
        user.password_hash = password::hash_blocking(password).await?;
        user.roles = user.roles.with(Role::Admin);
        user.disabled_at = None;
        let now = now_micros();
        let mut tx = state.db.begin().await?;
        store::users::update(&mut tx, &user, now).await?;
        store::tokens::revoke_user(&mut tx, &user.id, now).await?;
        tx.commit().await?;
        return Ok(());
    }
    let account = NewAccount {
        email,
        password,
        name: Name::parse("Administrator").map_err(|e| anyhow::anyhow!(e.message))?,
        roles: Roles::customer().with(Role::Admin),
    };
    let mut tx = state.db.begin().await?;
    match accounts::insert_user(&mut tx, account).await {
        Ok(user) => {
            tx.commit().await?;
            tracing::info!(user_id = %user.id, "bootstrap admin created");
        }
        // Another replica starting at the same time created it.
        Err(e) if e.code() == "email_taken" => {}
        Err(e) => return Err(anyhow::anyhow!("{e}")).context("creating the bootstrap admin"),
    }
    Ok(())
}
