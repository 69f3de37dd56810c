-- Every cart, reservation and order names its sales channel, and a shop has a handful of
-- channels. On PostgreSQL a foreign key's check locks the parent row (FOR KEY SHARE) in every
-- transaction that inserts a child, so all checkouts in a channel share-lock its one row at
-- once, which PostgreSQL keeps as multixacts that grow with every concurrent checkout. A
-- channel is never deleted, and every write reads the channel before naming it, so there
-- these keys are dropped. SQLite's checks lock no rows: it keeps them.
{drop_channel_references}
