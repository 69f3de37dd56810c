-- Webhooks: endpoints that receive the event log, each event's delivery to each endpoint and
-- every attempt at it; and the leases and cursors that let several server processes share
-- background work.

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    -- A JSON array of event type patterns: `*`, `order.placed`, `order.*`.
    events TEXT NOT NULL,
    -- Kept as given: every delivery is signed with it.
    secret TEXT NOT NULL,
    status TEXT NOT NULL,
    -- Every matching event up to this seq has a delivery; fan-out reads the log after it.
    last_event_seq BIGINT NOT NULL,
    -- Bumped by every replay, so the replayed events become new deliveries.
    replay BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    replay BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempt_count BIGINT NOT NULL,
    first_attempt_at BIGINT,
    next_attempt_at BIGINT,
    -- While in the future, one server process is sending this delivery and no other may.
    claimed_until BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    response_time_ms BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- An event is delivered once per endpoint (and once more per replay).
    UNIQUE (endpoint_id, event_id, replay)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    number BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    response_time_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, number)
);

-- A job that only one server process may run at a time, and which process holds it until when.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- How far the event log has been published to NATS JetStream.
INSERT INTO counters (name, value) VALUES ('nats_published', 0) ON CONFLICT (name) DO NOTHING;
