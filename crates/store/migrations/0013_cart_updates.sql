-- Adding a line or setting a cart's details moves its `updated_at` on. Indexed, that column
-- made every such update write new entries in both of the table's indexes (and PostgreSQL
-- write the whole row anew elsewhere). A customer's carts are found by customer and status
-- alone (a customer has few active carts to sort), and on PostgreSQL each page of carts keeps
-- room for their updates, which then touch no index at all.
DROP INDEX carts_by_customer;
CREATE INDEX carts_by_customer ON carts (customer_id, status);
{cart_update_room}
