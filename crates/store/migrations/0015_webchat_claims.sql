-- The e-mail a web chat visitor typed: a claim, not proof, so it finds no customer; it is
-- kept on the conversation for an agent to confirm (by merging the visitor into the customer).
ALTER TABLE conversations ADD COLUMN claimed_email TEXT;
