-- Carts and orders from every channel, their fulfilments and returns.

CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('order_number', 1000);

CREATE TABLE carts (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels (id),
    customer_id TEXT,
    email TEXT,
    currency TEXT NOT NULL,
    shipping_address TEXT,
    fulfillment TEXT NOT NULL,
    loyalty_points BIGINT NOT NULL,
    status TEXT NOT NULL,
    order_id TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX carts_by_customer ON carts (customer_id, status, updated_at);

CREATE TABLE cart_lines (
    id TEXT PRIMARY KEY,
    cart_id TEXT NOT NULL REFERENCES carts (id),
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_amount BIGINT NOT NULL,
    UNIQUE (cart_id, sku)
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,
    channel_id TEXT NOT NULL REFERENCES channels (id),
    external_id TEXT,
    customer_id TEXT,
    email TEXT,
    status TEXT NOT NULL,
    method TEXT NOT NULL,
    location_id TEXT,
    shipping_address TEXT,
    reservation_id TEXT REFERENCES reservations (id),
    currency TEXT NOT NULL,
    subtotal BIGINT NOT NULL,
    discount BIGINT NOT NULL,
    total BIGINT NOT NULL,
    loyalty_points_redeemed BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- An order made elsewhere is taken in once per channel.
    UNIQUE (channel_id, external_id)
);
CREATE INDEX orders_by_customer ON orders (customer_id, id);
CREATE INDEX orders_by_status ON orders (status, id);
CREATE INDEX orders_by_reservation ON orders (reservation_id);

CREATE TABLE order_lines (
    order_id TEXT NOT NULL REFERENCES orders (id),
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_amount BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE fulfillments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    location_id TEXT NOT NULL REFERENCES locations (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    carrier TEXT,
    tracking_number TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX fulfillments_by_order ON fulfillments (order_id, id);
CREATE INDEX fulfillments_by_location ON fulfillments (location_id, status);

CREATE TABLE fulfillment_lines (
    fulfillment_id TEXT NOT NULL REFERENCES fulfillments (id),
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (fulfillment_id, line_no)
);

CREATE TABLE returns (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    location_id TEXT NOT NULL REFERENCES locations (id),
    restock BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    refund_amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX returns_by_order ON returns (order_id);

CREATE TABLE return_lines (
    return_id TEXT NOT NULL REFERENCES returns (id),
    line_no BIGINT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    refund_amount BIGINT NOT NULL,
    PRIMARY KEY (return_id, line_no)
);
