-- Sign-in attempts, counted before the password is checked (one conditional upsert per
-- counter, so parallel attempts cannot all see room under the limit), per e-mail address and
-- client address, per client address, and per e-mail address. Subjects are SHA-256 hashes:
-- no address is kept in clear.
CREATE TABLE login_attempts (
    subject TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    attempts BIGINT NOT NULL
);
-- Counters whose window has passed are dropped as attempts come, so guessing over many
-- addresses does not grow the table for ever.
CREATE INDEX login_attempts_by_window ON login_attempts (window_start);
DROP TABLE login_failures;
