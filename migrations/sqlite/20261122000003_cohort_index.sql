-- A covering index for timeliness reports: a period's cohort is read from
-- the index alone, so a month's report costs what that month holds, not what
-- the whole history holds.
CREATE INDEX notices_cohort ON notices (
    direction, received_at, status, peer, kind, reply_required,
    created_at, due_at, acknowledged_at, answered_at
);
