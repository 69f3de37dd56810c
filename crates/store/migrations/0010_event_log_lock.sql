-- A reader follows the log by `seq`, so events must become visible in `seq` order. On
-- PostgreSQL every append therefore takes the log's lock as its row is numbered, and keeps it
-- to its commit: taken by the insert itself, it costs no round trip of its own.
-- SQLite writes one transaction at a time anyway.
{event_seq_under_lock}
