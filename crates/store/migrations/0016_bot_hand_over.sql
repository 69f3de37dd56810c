-- When the bot left a conversation to people (in the web chat: an order it could not match
-- to the number and e-mail given): from then on it answers there no more, so nobody can go
-- on guessing order numbers with it.
ALTER TABLE conversations ADD COLUMN bot_handed_over_at BIGINT;
