-- Responses remembered by the kernel's Idempotency-Key middleware (src/idempotency.rs).
-- Bookkeeping of these migrations is in `_kernel_migrations`, apart from the service's own.
CREATE TABLE idempotency_keys (
    -- SHA-256 (hex) of the principal, method and path the key was used with.
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    -- SHA-256 (hex) of method, path and query, and body of the first request.
    fingerprint TEXT NOT NULL,
    -- `in_progress` while the first request runs, then `completed`.
    state TEXT NOT NULL,
    -- Random token of the request that owns an `in_progress` row.
    lease TEXT NOT NULL,
    response_status BIGINT,
    -- JSON array of [name, value] pairs.
    response_headers TEXT,
    -- Base64 of the response body bytes.
    response_body TEXT,
    created_at BIGINT NOT NULL,
    locked_at BIGINT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
