-- A phone number shared in a chat without the provider vouching that it is the sender's (a
-- Viber contact card): a claim like `claimed_email`, kept for an agent to confirm, never an
-- identity.
ALTER TABLE conversations ADD COLUMN claimed_phone TEXT;
