-- Notices still owing the reply they need, in deadline order: the pending
-- list (待办: inbound ones), its counts, and the overdue lists walk it and
-- read one page. A partial index: its WHERE must stay the text
-- `store::notices::open_sql` writes (literal codes: WITHDRAWN = 6,
-- FEEDBACK = 2), or the planners will not use it.
CREATE INDEX notices_open ON notices (direction, due_at, id)
    WHERE status <> 6 AND answered_at IS NULL AND (reply_required = 2 OR acknowledged_at IS NULL);

-- 已发送 and ListNotices, newest first, as an index walk per direction in
-- the order `store::notices::list_notices_of` reads: (created_at, id)
-- descending. It replaces the index on (direction, created_at) alone.
DROP INDEX notices_created;
CREATE INDEX notices_created ON notices (direction, created_at, id);
