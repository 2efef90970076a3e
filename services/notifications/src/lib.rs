//! Notifications: email, SMS, push, in-app, webhook and chat messages from templates, with
//! per-user preferences and quiet hours, delivery with retries and provider failover, rate
//! limits that delay rather than drop, an in-app inbox with a live stream, and a local mailbox
//! when no email provider is configured.
//!
//! Sending is asynchronous: a send is stored `queued` and answered at once; the
//! [`delivery::Sender`] takes it from the queue.

pub mod api;
pub mod compose;
pub mod delivery;
pub mod domain;
pub mod events;
pub mod links;
pub mod providers;
pub mod store;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use mercato_kernel::{Config, Context, Service, ServiceInfo};
use mercato_store::{Db, Migrator, is_unique_violation, now_micros};
use tokio::sync::broadcast;

use crate::domain::Channel;
use crate::providers::Providers;

/// Schema of the notifications database.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// CloudEvents `source` of what this service publishes.
pub const SOURCE: &str = "mercato/notifications";

/// Starts notifications: the built-in templates, the sender, the consumers; returns its app.
pub async fn start(ctx: Context) -> anyhow::Result<Service> {
    let info = ServiceInfo::find("notifications")
        .ok_or_else(|| anyhow::anyhow!("notifications not in the service catalog"))?;
    install_built_ins(&ctx.db).await?;
    let (inbox, _) = broadcast::channel(1024);
    let providers = providers_from(&ctx.config, &ctx.db, &inbox)?;
    tracing::info!(?providers, "notification providers");
    let config = &ctx.config;
    let sender = delivery::Sender::new(
        ctx.db.clone(),
        providers,
        delivery::Settings {
            retry_ms: config.notifications_retry_ms,
            max_attempts: config.notifications_max_attempts,
            poll: Duration::from_millis(config.notifications_poll_ms.max(10)),
            user_rate: config.notifications_user_rate_per_second,
            provider_rate: config.notifications_provider_rate_per_second,
            concurrency: 16,
        },
    );
    sender.spawn(ctx.shutdown.clone(), &ctx.tasks);
    let links = link_signer(&ctx.db, &config.mercato_public_url).await?;
    events::spawn_consumers(&ctx, &sender, &links);
    let state = api::AppState::new(
        ctx.db.clone(),
        sender,
        inbox,
        links,
        config.notifications_api_rate_per_second,
    )
    .with_callbacks(callbacks_from(config)?);
    Ok(Service::new(
        info,
        api::router(state),
        api::ApiDoc::openapi(),
        &ctx,
    ))
}

/// The providers the configuration names, per channel in failover order. Email without any
/// provider goes to the local mailbox; in-app needs none.
pub fn providers_from(
    config: &Config,
    db: &Db,
    inbox: &broadcast::Sender<providers::in_app::InboxEvent>,
) -> anyhow::Result<Providers> {
    let timeout = Duration::from_millis(config.notifications_provider_timeout_ms.max(1));
    let mut all = Providers::default();
    if let Some(url) = config.smtp_url.as_deref().filter(|u| !u.is_empty()) {
        all.add(
            Channel::Email,
            Arc::new(providers::smtp::Smtp::new(url, &config.smtp_from)?),
        );
    }
    if let Some(key) = &config.sendgrid_api_key {
        all.add(
            Channel::Email,
            Arc::new(providers::sendgrid::SendGrid::new(
                &config.sendgrid_api_base,
                key.expose(),
                &config.smtp_from,
                timeout,
            )?),
        );
    }
    if all.of(Channel::Email).is_empty() {
        all.add(
            Channel::Email,
            Arc::new(providers::mailbox::LocalMailbox::new(db.clone())),
        );
    }
    if let (Some(sid), Some(token), Some(from)) = (
        &config.twilio_account_sid,
        &config.twilio_auth_token,
        &config.twilio_from,
    ) {
        all.add(
            Channel::Sms,
            Arc::new(providers::twilio::Twilio::new(
                &config.twilio_api_base,
                sid,
                token.expose(),
                from,
                timeout,
            )?),
        );
    }
    if let (Some(key), Some(secret), Some(from)) = (
        &config.vonage_api_key,
        &config.vonage_api_secret,
        &config.vonage_from,
    ) {
        all.add(
            Channel::Sms,
            Arc::new(providers::vonage::Vonage::new(
                &config.vonage_api_base,
                key,
                secret.expose(),
                from,
                timeout,
            )?),
        );
    }
    if let Some(path) = &config.fcm_service_account_file {
        let json = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read FCM_SERVICE_ACCOUNT_FILE `{}`: {e}",
                path.display()
            )
        })?;
        all.add(
            Channel::Push,
            Arc::new(providers::fcm::Fcm::from_service_account(
                &json,
                &config.fcm_api_base,
                timeout,
            )?),
        );
    }
    if let (Some(path), Some(key_id), Some(team_id), Some(topic)) = (
        &config.apns_key_file,
        &config.apns_key_id,
        &config.apns_team_id,
        &config.apns_topic,
    ) {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read APNS_KEY_FILE `{}`: {e}", path.display()))?;
        all.add(
            Channel::Push,
            Arc::new(providers::apns::Apns::new(
                &config.apns_api_base,
                &pem,
                key_id,
                team_id,
                topic,
                timeout,
            )?),
        );
    }
    all.add(
        Channel::InApp,
        Arc::new(providers::in_app::InApp::new(inbox.clone())),
    );
    all.add(
        Channel::Webhook,
        Arc::new(providers::webhook::Webhook::new(
            config
                .notifications_webhook_secret
                .as_ref()
                .map(|s| s.expose().to_owned()),
            timeout,
        )),
    );
    all.add(Channel::Chat, Arc::new(providers::chat::Chat::new(timeout)));
    Ok(all)
}

/// What verifies providers' delivery reports.
fn callbacks_from(config: &Config) -> anyhow::Result<api::Callbacks> {
    use base64::Engine;
    let twilio = config.twilio_auth_token.as_ref().map(|token| {
        let url = format!(
            "{}{}",
            config.mercato_public_url.trim_end_matches('/'),
            api::TWILIO_STATUS_PATH
        );
        (token.expose().to_owned(), url)
    });
    let sendgrid_key = match config.sendgrid_webhook_public_key.as_deref() {
        Some(key) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .map_err(|e| anyhow::anyhow!("SENDGRID_WEBHOOK_PUBLIC_KEY is not base64: {e}"))?,
        ),
        None => None,
    };
    Ok(api::Callbacks {
        twilio,
        sendgrid_key,
    })
}

/// The link signer, with the key kept in the database (made on first start), so links in
/// messages already sent stay valid across restarts and replicas.
async fn link_signer(db: &Db, public_url: &str) -> anyhow::Result<links::Links> {
    let mut conn = db.pool().acquire().await?;
    let key = store::setting_or_insert(&mut conn, "link_key", || {
        hex::encode(rand::random::<[u8; 32]>())
    })
    .await?;
    links::Links::new(public_url, &hex::decode(&key)?)
}

/// Stores version 1 of each built-in template that has no version yet.
async fn install_built_ins(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.pool().acquire().await?;
    for b in templates::BUILT_INS {
        if store::latest_template(&mut conn, b.name, b.channel, "")
            .await?
            .is_some()
        {
            continue;
        }
        let row = store::TemplateRow {
            id: mercato_kernel::id::new_id("tpl"),
            name: b.name.to_owned(),
            channel: b.channel.to_owned(),
            locale: String::new(),
            version: 1,
            subject: b.subject.to_owned(),
            body: b.body.to_owned(),
            html: b.html.map(str::to_owned),
            variables: serde_json::to_string(b.variables)?,
            category: b.category.to_owned(),
            variants: "[]".to_owned(),
            created_at: now_micros(),
        };
        match store::insert_template(&mut conn, &row).await {
            // Another replica installed it first.
            Err(e) if is_unique_violation(&e) => {}
            other => other?,
        }
    }
    Ok(())
}
