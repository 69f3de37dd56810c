-- Customers: profiles, the identities that recognise them, consents, merges, loyalty points
-- and the timeline that other domains write into.

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    name TEXT,
    tags TEXT NOT NULL,
    preferred_channel TEXT,
    -- Always the sum of the customer's loyalty_movements; changed by one conditional UPDATE
    -- so that two redemptions at once can never take it below 0.
    loyalty_balance BIGINT NOT NULL,
    merged_into TEXT REFERENCES customers (id),
    erased_at BIGINT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX customers_by_merged_into ON customers (merged_into);

-- One normalised identity belongs to one customer: the primary key is the rule.
CREATE TABLE customer_identities (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX customer_identities_by_customer ON customer_identities (customer_id);

CREATE TABLE customer_consents (
    customer_id TEXT NOT NULL REFERENCES customers (id),
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (customer_id, channel)
);

-- Pairs of customers whom identities tied together; customer_id < other_customer_id.
CREATE TABLE merge_suggestions (
    customer_id TEXT NOT NULL REFERENCES customers (id),
    other_customer_id TEXT NOT NULL REFERENCES customers (id),
    suggested_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, other_customer_id)
);
CREATE INDEX merge_suggestions_by_other ON merge_suggestions (other_customer_id);

CREATE TABLE customer_merges (
    id TEXT PRIMARY KEY,
    survivor_id TEXT NOT NULL REFERENCES customers (id),
    absorbed_id TEXT NOT NULL REFERENCES customers (id),
    moved TEXT NOT NULL,
    by_key_id TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX customer_merges_by_survivor ON customer_merges (survivor_id);
CREATE INDEX customer_merges_by_absorbed ON customer_merges (absorbed_id);

CREATE TABLE loyalty_movements (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    points BIGINT NOT NULL,
    reason TEXT NOT NULL,
    reference TEXT,
    order_id TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX loyalty_movements_by_customer ON loyalty_movements (customer_id, at, id);

-- What the customer spent (or got back), in minor units: the tier counts the last 12 months.
CREATE TABLE customer_spend (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    amount_minor BIGINT NOT NULL,
    order_id TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX customer_spend_by_customer ON customer_spend (customer_id, at);

CREATE TABLE customer_timeline (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reference TEXT,
    summary TEXT NOT NULL
);
CREATE INDEX customer_timeline_by_customer ON customer_timeline (customer_id, at, id);
