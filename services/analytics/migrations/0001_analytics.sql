-- Events the analytics service has recorded: tracked events and audit entries.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT,
    data TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX events_name ON events (name, id);

-- Daily counters per event name, the aggregate dashboards read.
CREATE TABLE metric_counts (
    name TEXT NOT NULL,
    day TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (name, day)
);

-- Track calls accepted, by client message id, so a retried call is accepted once.
CREATE TABLE accepted_messages (
    event_id TEXT PRIMARY KEY,
    accepted_at BIGINT NOT NULL
);

-- Events a consumer gave up on, with the error, for inspection.
CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    consumer TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    event TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
