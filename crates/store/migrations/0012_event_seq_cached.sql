-- The function that numbers events under the log's lock (migration 10), in PL/pgSQL: a SQL
-- function's body is parsed and planned again in every statement that calls it, which was a
-- tenth of PostgreSQL's work in a checkout; PL/pgSQL keeps its plans for the session.
{event_seq_cached}
