-- The admin app: the people who sign in, their sessions, and failed sign-ins to slow guessing.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- Stored trimmed and lower-cased: one address, one account.
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    -- The store of store staff; nobody else has one.
    location_id TEXT REFERENCES locations (id),
    -- An argon2id PHC string; the password itself is never stored.
    password_hash TEXT NOT NULL,
    deactivated_at BIGINT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE user_sessions (
    -- SHA-256 of the cookie's token: a copy of the table signs nobody in.
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    -- Every form of the session carries it back; another site's form cannot know it.
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX user_sessions_by_user ON user_sessions (user_id);
CREATE INDEX user_sessions_by_expiry ON user_sessions (expires_at);

CREATE TABLE login_failures (
    -- SHA-256 of the e-mail address tried and the network address it came from: counted
    -- together, never kept in clear.
    subject TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX login_failures_by_subject ON login_failures (subject, at);
