-- Orders checked out through a storefront's public key wait for their payment ('pending'),
-- holding their stock only for the payment window, until marked 'paid'. NULL: the hub does
-- not follow the order's payment (taken in from elsewhere, checked out by the shop's backend).
ALTER TABLE orders ADD COLUMN payment_status TEXT;

-- Unpaid storefront orders per buyer's e-mail, counted by one conditional write, so that
-- parallel checkouts cannot pass the cap together.
CREATE TABLE unpaid_orders (
    email TEXT PRIMARY KEY,
    pending BIGINT NOT NULL
);
