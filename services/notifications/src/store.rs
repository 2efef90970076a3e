//! SQL of the notifications database.

use sqlx::{AnyConnection, FromRow};

/// A template version as stored.
#[derive(Debug, Clone, FromRow)]
pub struct TemplateRow {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub locale: String,
    pub version: i64,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub variables: String,
    pub category: String,
    pub variants: String,
    pub created_at: i64,
}

impl TemplateRow {
    /// The declared variable names.
    pub fn variable_names(&self) -> Vec<String> {
        serde_json::from_str(&self.variables).unwrap_or_default()
    }
}

const TEMPLATE_COLUMNS: &str = "id, name, channel, locale, version, subject, body, html, \
                                variables, category, variants, created_at";

pub async fn insert_template(conn: &mut AnyConnection, t: &TemplateRow) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO templates ({TEMPLATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12)"
    )))
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.channel)
    .bind(&t.locale)
    .bind(t.version)
    .bind(&t.subject)
    .bind(&t.body)
    .bind(&t.html)
    .bind(&t.variables)
    .bind(&t.category)
    .bind(&t.variants)
    .bind(t.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest version of `(name, channel, locale)`.
pub async fn latest_template(
    conn: &mut AnyConnection,
    name: &str,
    channel: &str,
    locale: &str,
) -> sqlx::Result<Option<TemplateRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE name = $1 AND channel = $2 \
         AND locale = $3 ORDER BY version DESC LIMIT 1"
    )))
    .bind(name)
    .bind(channel)
    .bind(locale)
    .fetch_optional(conn)
    .await
}

/// The newest version of every template (each name, channel and locale once).
pub async fn list_templates(conn: &mut AnyConnection) -> sqlx::Result<Vec<TemplateRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TEMPLATE_COLUMNS} FROM templates t WHERE version = (SELECT MAX(version) FROM \
         templates u WHERE u.name = t.name AND u.channel = t.channel AND u.locale = t.locale) \
         ORDER BY name, channel, locale"
    )))
    .fetch_all(conn)
    .await
}

/// A notification as stored.
#[derive(Debug, Clone, FromRow)]
pub struct NotificationRow {
    pub id: String,
    pub channel: String,
    pub user_id: Option<String>,
    pub recipient: String,
    pub template: Option<String>,
    pub template_version: Option<i64>,
    pub category: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub data: String,
    pub status: String,
    pub urgent: i64,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub claimed_until: Option<i64>,
    pub last_error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    pub read_at: Option<i64>,
    pub variant: Option<String>,
    pub opened_at: Option<i64>,
    pub clicked_at: Option<i64>,
}

const NOTIFICATION_COLUMNS: &str = "id, channel, user_id, recipient, template, \
    template_version, category, subject, body, html, data, status, urgent, provider, \
    provider_message_id, attempts, next_attempt_at, claimed_until, last_error, idempotency_key, \
    created_at, updated_at, sent_at, read_at, variant, opened_at, clicked_at";

pub async fn insert_notification(
    conn: &mut AnyConnection,
    n: &NotificationRow,
) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notifications ({NOTIFICATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, \
         $26, $27)"
    )))
    .bind(&n.id)
    .bind(&n.channel)
    .bind(&n.user_id)
    .bind(&n.recipient)
    .bind(&n.template)
    .bind(n.template_version)
    .bind(&n.category)
    .bind(&n.subject)
    .bind(&n.body)
    .bind(&n.html)
    .bind(&n.data)
    .bind(&n.status)
    .bind(n.urgent)
    .bind(&n.provider)
    .bind(&n.provider_message_id)
    .bind(n.attempts)
    .bind(n.next_attempt_at)
    .bind(n.claimed_until)
    .bind(&n.last_error)
    .bind(&n.idempotency_key)
    .bind(n.created_at)
    .bind(n.updated_at)
    .bind(n.sent_at)
    .bind(n.read_at)
    .bind(&n.variant)
    .bind(n.opened_at)
    .bind(n.clicked_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_notification(
    conn: &mut AnyConnection,
    id: &str,
) -> sqlx::Result<Option<NotificationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The newest notifications, newest first.
pub async fn recent_notifications(
    conn: &mut AnyConnection,
    limit: i64,
) -> sqlx::Result<Vec<NotificationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications ORDER BY created_at DESC, id DESC LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn find_by_key(
    conn: &mut AnyConnection,
    key: &str,
) -> sqlx::Result<Option<NotificationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE idempotency_key = $1"
    )))
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// Ids of queued notifications due now whose claim (if any) has run out, oldest first.
pub async fn due(conn: &mut AnyConnection, now: i64, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM notifications WHERE status IN ('queued', 'sending') \
         AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
         ORDER BY next_attempt_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Claims a due notification for one sender until `until`; false when another took it.
pub async fn claim(conn: &mut AnyConnection, id: &str, now: i64, until: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE notifications SET status = 'sending', claimed_until = $3, updated_at = $2 \
         WHERE id = $1 AND status IN ('queued', 'sending') AND next_attempt_at <= $2 \
         AND (claimed_until IS NULL OR claimed_until < $2)",
    )
    .bind(id)
    .bind(now)
    .bind(until)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts a claimed notification back in the queue until `at` (quiet hours, throttling, retry).
pub async fn requeue(
    conn: &mut AnyConnection,
    id: &str,
    at: i64,
    attempts: i64,
    error: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE notifications SET status = 'queued', next_attempt_at = $2, attempts = $3, \
         last_error = COALESCE($4, last_error), claimed_until = NULL, updated_at = $5 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(at)
    .bind(attempts)
    .bind(error)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a notification's delivery in `status`.
#[allow(clippy::too_many_arguments)]
pub async fn settle(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    provider: Option<&str>,
    message_id: Option<&str>,
    attempts: i64,
    error: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE notifications SET status = $2, provider = $3, provider_message_id = $4, \
         attempts = $5, last_error = $6, claimed_until = NULL, updated_at = $7, \
         sent_at = CASE WHEN $2 IN ('sent', 'delivered') THEN $7 ELSE sent_at END WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(provider)
    .bind(message_id)
    .bind(attempts)
    .bind(error)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// An attempt of a provider.
#[derive(Debug, Clone, FromRow)]
pub struct AttemptRow {
    pub id: String,
    pub notification_id: String,
    pub provider: String,
    pub outcome: String,
    pub response: Option<String>,
    pub duration_ms: i64,
    pub created_at: i64,
}

pub async fn insert_attempt(conn: &mut AnyConnection, a: &AttemptRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO attempts (id, notification_id, provider, outcome, response, duration_ms, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&a.id)
    .bind(&a.notification_id)
    .bind(&a.provider)
    .bind(&a.outcome)
    .bind(&a.response)
    .bind(a.duration_ms)
    .bind(a.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn attempts_of(conn: &mut AnyConnection, id: &str) -> sqlx::Result<Vec<AttemptRow>> {
    sqlx::query_as(
        "SELECT id, notification_id, provider, outcome, response, duration_ms, created_at \
         FROM attempts WHERE notification_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Whether the user turned `category` off on `channel` (no row: on).
pub async fn is_disabled(
    conn: &mut AnyConnection,
    user_id: &str,
    category: &str,
    channel: &str,
) -> sqlx::Result<bool> {
    let enabled: Option<i64> = sqlx::query_scalar(
        "SELECT enabled FROM preferences WHERE user_id = $1 AND category = $2 AND channel = $3",
    )
    .bind(user_id)
    .bind(category)
    .bind(channel)
    .fetch_optional(conn)
    .await?;
    Ok(enabled == Some(0))
}

pub async fn set_preference(
    conn: &mut AnyConnection,
    user_id: &str,
    category: &str,
    channel: &str,
    enabled: bool,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO preferences (user_id, category, channel, enabled, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, category, channel) \
         DO UPDATE SET enabled = $4, updated_at = $5",
    )
    .bind(user_id)
    .bind(category)
    .bind(channel)
    .bind(i64::from(enabled))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn preferences_of(
    conn: &mut AnyConnection,
    user_id: &str,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT category, channel, enabled FROM preferences WHERE user_id = $1 \
         ORDER BY category, channel",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// `(start_minute, end_minute, utc_offset_minutes)` of the user's quiet hours.
pub async fn quiet_hours(
    conn: &mut AnyConnection,
    user_id: &str,
) -> sqlx::Result<Option<(i64, i64, i64)>> {
    sqlx::query_as(
        "SELECT start_minute, end_minute, utc_offset_minutes FROM quiet_hours WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await
}

pub async fn set_quiet_hours(
    conn: &mut AnyConnection,
    user_id: &str,
    hours: Option<(i64, i64, i64)>,
    now: i64,
) -> sqlx::Result<()> {
    match hours {
        None => {
            sqlx::query("DELETE FROM quiet_hours WHERE user_id = $1")
                .bind(user_id)
                .execute(conn)
                .await?;
        }
        Some((start, end, offset)) => {
            sqlx::query(
                "INSERT INTO quiet_hours (user_id, start_minute, end_minute, utc_offset_minutes, \
                 updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET \
                 start_minute = $2, end_minute = $3, utc_offset_minutes = $4, updated_at = $5",
            )
            .bind(user_id)
            .bind(start)
            .bind(end)
            .bind(offset)
            .bind(now)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The addresses known for a user.
pub async fn contact(
    conn: &mut AnyConnection,
    user_id: &str,
) -> sqlx::Result<Option<(Option<String>, Option<String>)>> {
    sqlx::query_as("SELECT email, phone FROM contacts WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

pub async fn set_contact(
    conn: &mut AnyConnection,
    user_id: &str,
    email: Option<&str>,
    phone: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO contacts (user_id, email, phone, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE SET email = COALESCE($2, contacts.email), \
         phone = COALESCE($3, contacts.phone), updated_at = $4",
    )
    .bind(user_id)
    .bind(email)
    .bind(phone)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user's in-app notifications, newest first, after the cursor.
pub async fn inbox(
    conn: &mut AnyConnection,
    user_id: &str,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<NotificationRow>> {
    let cursor = after.unwrap_or("~");
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE user_id = $1 \
         AND channel = 'in_app' AND status = 'delivered' AND id < $2 ORDER BY id DESC LIMIT $3"
    )))
    .bind(user_id)
    .bind(cursor)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn unread(conn: &mut AnyConnection, user_id: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND channel = 'in_app' \
         AND status = 'delivered' AND read_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(conn)
    .await
}

/// Marks in-app notifications of the user read: `id`, or all when `None`.
pub async fn mark_read(
    conn: &mut AnyConnection,
    user_id: &str,
    id: Option<&str>,
    now: i64,
) -> sqlx::Result<u64> {
    let done =
        match id {
            Some(id) => {
                sqlx::query(
                    "UPDATE notifications SET read_at = $3 WHERE user_id = $1 AND id = $2 \
                 AND channel = 'in_app' AND read_at IS NULL",
                )
                .bind(user_id)
                .bind(id)
                .bind(now)
                .execute(conn)
                .await?
            }
            None => sqlx::query(
                "UPDATE notifications SET read_at = $2 WHERE user_id = $1 AND channel = 'in_app' \
                 AND read_at IS NULL",
            )
            .bind(user_id)
            .bind(now)
            .execute(conn)
            .await?,
        };
    Ok(done.rows_affected())
}

/// A locally delivered email.
#[derive(Debug, Clone, FromRow)]
pub struct MailRow {
    pub id: String,
    pub notification_id: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    pub created_at: i64,
}

pub async fn insert_mail(conn: &mut AnyConnection, m: &MailRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mailbox (id, notification_id, recipient, subject, text_body, html_body, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&m.id)
    .bind(&m.notification_id)
    .bind(&m.recipient)
    .bind(&m.subject)
    .bind(&m.text_body)
    .bind(&m.html_body)
    .bind(m.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mails(conn: &mut AnyConnection, limit: i64) -> sqlx::Result<Vec<MailRow>> {
    sqlx::query_as(
        "SELECT id, notification_id, recipient, subject, text_body, html_body, created_at \
         FROM mailbox ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Counts per channel and status since `from` (epoch µs).
pub async fn analytics(
    conn: &mut AnyConnection,
    from: i64,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT channel, status, COUNT(*) FROM notifications WHERE created_at >= $1 \
         GROUP BY channel, status ORDER BY channel, status",
    )
    .bind(from)
    .fetch_all(conn)
    .await
}

/// Records the first open (`column` = `opened_at`) or click (`clicked_at`) of a notification.
pub async fn mark_engaged(
    conn: &mut AnyConnection,
    id: &str,
    clicked: bool,
    now: i64,
) -> sqlx::Result<bool> {
    // A click implies the message was opened, even with images blocked.
    let sql = if clicked {
        "UPDATE notifications SET clicked_at = COALESCE(clicked_at, $2), \
         opened_at = COALESCE(opened_at, $2) WHERE id = $1"
    } else {
        "UPDATE notifications SET opened_at = COALESCE(opened_at, $2) WHERE id = $1"
    };
    let done = sqlx::query(sql).bind(id).bind(now).execute(conn).await?;
    Ok(done.rows_affected() == 1)
}

/// Per variant of a template: `(variant, sent, delivered, opened, clicked)`; "sent" counts
/// every notification a provider took.
pub async fn ab_counts(
    conn: &mut AnyConnection,
    template: &str,
    channel: &str,
) -> sqlx::Result<Vec<(String, i64, i64, i64, i64)>> {
    sqlx::query_as(
        "SELECT variant, \
         CAST(SUM(CASE WHEN status IN ('sent', 'delivered') THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN opened_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN clicked_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) \
         FROM notifications WHERE template = $1 AND channel = $2 AND variant IS NOT NULL \
         GROUP BY variant ORDER BY variant",
    )
    .bind(template)
    .bind(channel)
    .fetch_all(conn)
    .await
}

/// A setting, made with `make` (and kept) when missing; replicas racing agree on the first.
pub async fn setting_or_insert(
    conn: &mut AnyConnection,
    name: &str,
    make: impl FnOnce() -> String,
) -> sqlx::Result<String> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(make())
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_one(conn)
        .await
}

/// The notification a provider knows as `message_id`.
pub async fn find_by_provider_message(
    conn: &mut AnyConnection,
    provider: &str,
    message_id: &str,
) -> sqlx::Result<Option<NotificationRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE provider = $1 \
         AND provider_message_id = $2"
    )))
    .bind(provider)
    .bind(message_id)
    .fetch_optional(conn)
    .await
}

/// A provider's report on a sent message: `delivered`, `bounced` or `failed`. Only a `sent`
/// (or, for a late bounce, `delivered`) message changes; a repeated report changes nothing.
pub async fn report_delivery(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE notifications SET status = $2, last_error = COALESCE($3, last_error), \
         updated_at = $4 WHERE id = $1 AND (status = 'sent' \
         OR (status = 'delivered' AND $2 = 'bounced'))",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
