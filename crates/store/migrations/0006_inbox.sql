-- The inbox: connected messaging channels, conversations with customers, their messages,
-- canned replies, and the agents each inbox assigns conversations to in turn.

CREATE TABLE inboxes (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- Sealed with the server's secret key (ChaCha20-Poly1305): a copy of the database alone
    -- does not give away the channels' tokens.
    credentials TEXT NOT NULL,
    api_base_url TEXT,
    sales_channel_id TEXT REFERENCES channels (id),
    -- The agent who was given the last conversation by round robin.
    last_assignee_id TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE inbox_agents (
    inbox_id TEXT NOT NULL REFERENCES inboxes (id),
    agent_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (inbox_id, agent_id)
);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    inbox_id TEXT NOT NULL REFERENCES inboxes (id),
    customer_id TEXT NOT NULL REFERENCES customers (id),
    -- Where replies go: the chat, number or user id the provider knows the customer by.
    contact_address TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee_id TEXT,
    team TEXT,
    tags TEXT NOT NULL,
    -- Reply windows run from the customer's last message.
    last_customer_message_at BIGINT,
    last_message_at BIGINT,
    opened_at BIGINT NOT NULL,
    first_response_at BIGINT,
    resolved_at BIGINT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- One conversation per person and inbox: a new message reopens it rather than starting
    -- another, and two deliveries racing for a new contact meet on this key.
    UNIQUE (inbox_id, contact_address)
);
CREATE INDEX conversations_by_customer ON conversations (customer_id, id);
CREATE INDEX conversations_by_status ON conversations (status, id);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    inbox_id TEXT NOT NULL REFERENCES inboxes (id),
    direction TEXT NOT NULL,
    sender_kind TEXT NOT NULL,
    sender_id TEXT,
    text TEXT,
    template TEXT,
    private BOOLEAN NOT NULL,
    provider_message_id TEXT,
    -- NULL for private notes.
    status TEXT,
    error TEXT,
    sent_at BIGINT,
    delivered_at BIGINT,
    read_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- A provider retrying a delivery sends the same message id: it is stored once.
    UNIQUE (inbox_id, provider_message_id)
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

CREATE TABLE canned_replies (
    id TEXT PRIMARY KEY,
    short_code TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
