-- The sites whose pages may use a publishable key (`https://shop.example`), separated by
-- spaces; browsers on other sites are refused it.
ALTER TABLE api_keys ADD COLUMN origins TEXT NOT NULL DEFAULT '';
