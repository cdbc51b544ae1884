-- The pending list (待办) as an index walk: inbound notices still owing the
-- reply they need (PENDING = 3, or ACKNOWLEDGED = 4 while FEEDBACK = 2 is
-- required), in deadline order. The expression must stay the one
-- `store::notices::AWAITING` writes, or the planner will not match it.
CREATE INDEX notices_awaiting ON notices (
    direction, ((status = 3 OR (status = 4 AND reply_required = 2))), due_at, id
);

-- 已发送 and ListNotices, newest first, as an index walk per direction in
-- the order `store::notices::list_notices_of` reads: (created_at, id)
-- descending. It replaces the index on (direction, created_at) alone.
DROP INDEX notices_created;
CREATE INDEX notices_created ON notices (direction, created_at, id);
