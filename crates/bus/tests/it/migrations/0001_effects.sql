-- What the test handlers write inside the consumer's transaction.
CREATE TABLE effects (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
