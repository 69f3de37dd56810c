-- The customer's name lower-cased by the server (any script, not just ASCII), for the name
-- search of GET /customers?q=. Filled for existing customers as this migration is applied.
ALTER TABLE customers ADD COLUMN search_name TEXT;
