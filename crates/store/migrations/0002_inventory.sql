-- Inventory: levels per SKU and location, the movement ledger, reservations.

CREATE TABLE inventory_levels (
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL REFERENCES locations (id),
    on_hand BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (sku, location_id),
    -- Never oversold: the database refuses any write that would promise more than is there.
    CHECK (reserved >= 0 AND reserved <= on_hand)
);
CREATE INDEX inventory_levels_by_location ON inventory_levels (location_id, sku);

CREATE TABLE inventory_movements (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL,
    delta BIGINT NOT NULL,
    reason TEXT NOT NULL,
    reference TEXT,
    on_hand_after BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX inventory_movements_by_level ON inventory_movements (sku, location_id, id);
CREATE INDEX inventory_movements_by_reason ON inventory_movements (location_id, reason, at);

CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id),
    status TEXT NOT NULL,
    reference TEXT,
    -- NULL: held until taken or released (an order's stock), never lapses.
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX reservations_by_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_allocations (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    -- Units already taken away (sold); the rest is still held.
    taken BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, line_no, location_id)
);
CREATE INDEX reservation_allocations_by_level ON reservation_allocations (sku, location_id);
