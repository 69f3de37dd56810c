-- Order numbers on PostgreSQL come from a sequence, which no checkout has to wait for; the
-- counter row would stay locked until each checkout's commit, one checkout after another.
-- SQLite writes one transaction at a time anyway and keeps the counter (and so no gaps).
{order_number_sequence}
