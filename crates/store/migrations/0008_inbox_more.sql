-- More of the inbox: the merchant's frequent questions that the bot answers by itself.

CREATE TABLE faq_entries (
    id TEXT PRIMARY KEY,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    -- A JSON array of more words customers use for the same question.
    keywords TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Set when the bot answered the customer by itself, so agents see which conversations
-- automation handled.
ALTER TABLE conversations ADD COLUMN answered_automatically_at BIGINT;

-- Visitors of the web chat widget, each known by a token their browser holds.
CREATE TABLE webchat_visitors (
    id TEXT PRIMARY KEY,
    inbox_id TEXT NOT NULL REFERENCES inboxes (id),
    -- SHA-256 of the visitor's token: a copy of the table lets nobody write as a visitor.
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
