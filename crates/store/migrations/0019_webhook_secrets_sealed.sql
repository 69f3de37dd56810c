-- Webhook signing secrets are sealed at rest like inbox credentials. Rows written before keep
-- their secret in the clear (FALSE here) and are read as they are.
ALTER TABLE webhook_endpoints ADD COLUMN secret_sealed BOOLEAN NOT NULL DEFAULT FALSE;
