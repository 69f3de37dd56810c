-- The foundation: API keys, idempotency, the event log and the catalog.
-- `{seq_pk}` is the backend's auto-increment primary key for the event log.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    channel_id TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE idempotency_keys (
    principal TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status BIGINT,
    response_body TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);

CREATE TABLE events (
    seq {seq_pk},
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE locations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    pickup BOOLEAN NOT NULL,
    ship_from BOOLEAN NOT NULL,
    same_day_radius_km DOUBLE PRECISION,
    priority BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    currency TEXT NOT NULL,
    buffer_units BIGINT,
    buffer_percent BIGINT,
    parity TEXT NOT NULL,
    max_deviation_percent BIGINT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE channel_locations (
    channel_id TEXT NOT NULL REFERENCES channels (id),
    location_id TEXT NOT NULL REFERENCES locations (id),
    position BIGINT NOT NULL,
    PRIMARY KEY (channel_id, location_id)
);
CREATE INDEX channel_locations_by_location ON channel_locations (location_id);

CREATE TABLE products (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    attributes TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE variants (
    id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    position BIGINT NOT NULL,
    sku TEXT NOT NULL UNIQUE,
    barcode TEXT,
    title TEXT NOT NULL,
    price_amount BIGINT NOT NULL,
    price_currency TEXT NOT NULL
);
CREATE INDEX variants_by_product ON variants (product_id, position);

CREATE TABLE listings (
    product_id TEXT NOT NULL REFERENCES products (id),
    channel_id TEXT NOT NULL REFERENCES channels (id),
    published BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (product_id, channel_id)
);

CREATE TABLE listing_prices (
    product_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    variant_id TEXT NOT NULL REFERENCES variants (id),
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (product_id, channel_id, variant_id),
    FOREIGN KEY (product_id, channel_id) REFERENCES listings (product_id, channel_id)
);
