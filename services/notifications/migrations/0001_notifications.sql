-- Notifications: templates (versioned), what was sent and every attempt, preferences, the
-- in-app inbox and the local mailbox. Times are epoch microseconds.
CREATE TABLE templates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- email | sms | push | in_app | webhook | chat
    channel TEXT NOT NULL,
    -- Empty: the default locale.
    locale TEXT NOT NULL,
    version BIGINT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    -- HTML body of emails; the text body is the plain part.
    html TEXT,
    -- JSON array of the variable names the template declares.
    variables TEXT NOT NULL,
    -- transactional | marketing | product_updates | …
    category TEXT NOT NULL,
    -- JSON array of A/B variants [{name, weight, subject, body, html}]; empty: none.
    variants TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    UNIQUE (name, channel, locale, version)
);

CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    user_id TEXT,
    recipient TEXT NOT NULL,
    template TEXT,
    template_version BIGINT,
    category TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    html TEXT,
    -- JSON: the data the template was rendered with.
    data TEXT NOT NULL,
    -- queued | sending | sent | delivered | failed | bounced | suppressed
    status TEXT NOT NULL,
    urgent BIGINT NOT NULL,
    provider TEXT,
    provider_message_id TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- A sender claims a row by pushing this out; an expired claim is taken over.
    claimed_until BIGINT,
    last_error TEXT,
    -- The caller-scoped idempotency key, when one was sent.
    idempotency_key TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    sent_at BIGINT,
    read_at BIGINT,
    -- The A/B variant rendered, when the template has variants.
    variant TEXT,
    opened_at BIGINT,
    clicked_at BIGINT
);
CREATE INDEX notifications_template ON notifications (template, channel, variant);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_inbox ON notifications (user_id, channel, id);

CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notifications (id),
    provider TEXT NOT NULL,
    -- sent | transient | permanent
    outcome TEXT NOT NULL,
    response TEXT,
    duration_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attempts_notification ON attempts (notification_id, id);

-- A missing row means enabled.
CREATE TABLE preferences (
    user_id TEXT NOT NULL,
    category TEXT NOT NULL,
    channel TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, category, channel)
);

CREATE TABLE quiet_hours (
    user_id TEXT PRIMARY KEY,
    -- Minutes after local midnight; start > end spans midnight.
    start_minute BIGINT NOT NULL,
    end_minute BIGINT NOT NULL,
    -- Offset from UTC in minutes (east positive), or an IANA name resolved at write time.
    utc_offset_minutes BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Addresses of users, learned from identity's events, for sends by user_id.
CREATE TABLE contacts (
    user_id TEXT PRIMARY KEY,
    email TEXT,
    phone TEXT,
    updated_at BIGINT NOT NULL
);

-- Emails delivered locally when no SMTP server is configured (`/admin/mail`).
CREATE TABLE mailbox (
    id TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT,
    created_at BIGINT NOT NULL
);

-- Keys the service makes for itself (the one signing click and unsubscribe links).
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
