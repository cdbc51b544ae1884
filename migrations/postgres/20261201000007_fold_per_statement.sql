-- Counts and roll-ups folded once per statement instead of once per row
-- (issue 11). A statement's changed rows reach one trigger call as
-- transition tables, and each of the three tables gets one upsert per
-- distinct key of the statement, instead of a plpgsql call and four upserts
-- for every row. Exactly the same figures: every insert, update and delete
-- of `notices` still moves them in its own transaction, whoever writes it.
--
-- The counters are split into 16 shards, chosen by the writing connection
-- (its backend pid), so that replicas and connections writing at the same
-- time do not queue on the same counter rows until each other's commit;
-- readers add the shards up (store::gauges, store::rollups).

DROP TRIGGER notices_changed ON notices;
DROP TRIGGER notices_updated ON notices;
DROP FUNCTION migrex_notices_changed();
DROP FUNCTION migrex_rollup(notices, BIGINT);

ALTER TABLE notice_counts ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notice_counts DROP CONSTRAINT notice_counts_pkey;
ALTER TABLE notice_counts ADD PRIMARY KEY (direction, kind, peer, status, shard);

ALTER TABLE timeliness_counts ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE timeliness_counts DROP CONSTRAINT timeliness_counts_pkey;
ALTER TABLE timeliness_counts ADD PRIMARY KEY (direction, month, peer, kind, due_at, shard);

ALTER TABLE timeliness_latency ADD COLUMN shard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE timeliness_latency DROP CONSTRAINT timeliness_latency_pkey;
ALTER TABLE timeliness_latency ADD PRIMARY KEY (direction, month, peer, kind, metric, bucket, shard);

-- What of a notice the counts and roll-ups read: the trigger calls carry
-- these, not whole rows (a timezone change rewrites a whole month of notices at once).
CREATE TYPE migrex_contribution AS (
    direction BIGINT, kind BIGINT, peer TEXT, status BIGINT, received_month BIGINT,
    due_at BIGINT, acknowledged_at BIGINT, answered_at BIGINT, reply_required BIGINT,
    reply_tenths BIGINT, lag_bucket BIGINT
);

CREATE FUNCTION migrex_contribution(r notices) RETURNS migrex_contribution
LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(r.direction, r.kind, r.peer, r.status, r.received_month, r.due_at,
        r.acknowledged_at, r.answered_at, r.reply_required, r.reply_tenths,
        r.lag_bucket)::migrex_contribution
$$;

-- The contributions of `minus` taken out and of `plus` added: the old and
-- the new rows of one statement. Keys are locked in key order, notice_counts
-- first, so that concurrent writers meet in the same order (a deadlock,
-- should one still happen, is retried by the receiving side).
CREATE FUNCTION migrex_fold(minus migrex_contribution[], plus migrex_contribution[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s BIGINT := pg_backend_pid() % 16;
BEGIN
    INSERT INTO notice_counts AS t (direction, kind, peer, status, shard, n)
        SELECT d.direction, d.kind, d.peer, d.status, s, SUM(d.sign)
        FROM (SELECT r.*, -1 AS sign FROM unnest(minus) r
              UNION ALL SELECT r.*, 1 FROM unnest(plus) r) d
        GROUP BY d.direction, d.kind, d.peer, d.status
        HAVING SUM(d.sign) <> 0
        ORDER BY 1, 2, 3, 4
    ON CONFLICT (direction, kind, peer, status, shard) DO UPDATE SET n = t.n + excluded.n;

    -- Only the cohort counts: received and given a deadline, not withdrawn.
    INSERT INTO timeliness_counts AS t (direction, month, peer, kind, due_at, shard, received,
            acknowledged, acknowledged_timely, needs_feedback, needs_feedback_answered,
            answered, answered_timely, replied)
        SELECT d.direction, d.received_month, d.peer, d.kind, d.due_at, s, SUM(d.sign),
            SUM(d.sign * (COALESCE(d.acknowledged_at, d.answered_at) IS NOT NULL)::INT),
            SUM(d.sign * COALESCE(COALESCE(d.acknowledged_at, d.answered_at) <= d.due_at, false)::INT),
            SUM(d.sign * (d.reply_required = 2)::INT),
            SUM(d.sign * (d.reply_required = 2 AND d.answered_at IS NOT NULL)::INT),
            SUM(d.sign * (d.answered_at IS NOT NULL)::INT),
            SUM(d.sign * COALESCE(d.answered_at <= d.due_at, false)::INT),
            SUM(d.sign * (d.reply_tenths IS NOT NULL)::INT)
        FROM (SELECT r.*, -1 AS sign FROM unnest(minus) r
              UNION ALL SELECT r.*, 1 FROM unnest(plus) r) d
        WHERE d.received_month IS NOT NULL AND d.due_at IS NOT NULL AND d.status <> 6
        GROUP BY d.direction, d.received_month, d.peer, d.kind, d.due_at
        ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (direction, month, peer, kind, due_at, shard) DO UPDATE SET
        received = t.received + excluded.received,
        acknowledged = t.acknowledged + excluded.acknowledged,
        acknowledged_timely = t.acknowledged_timely + excluded.acknowledged_timely,
        needs_feedback = t.needs_feedback + excluded.needs_feedback,
        needs_feedback_answered = t.needs_feedback_answered + excluded.needs_feedback_answered,
        answered = t.answered + excluded.answered,
        answered_timely = t.answered_timely + excluded.answered_timely,
        replied = t.replied + excluded.replied;

    -- Metric 1: reply latency (reply_tenths, when the reply is stored);
    -- metric 2: delivery lag (lag_bucket).
    INSERT INTO timeliness_latency AS t (direction, month, peer, kind, metric, bucket, shard, n)
        SELECT d.direction, d.received_month, d.peer, d.kind, m.metric, m.bucket, s, SUM(d.sign)
        FROM (SELECT r.*, -1 AS sign FROM unnest(minus) r
              UNION ALL SELECT r.*, 1 FROM unnest(plus) r) d
        CROSS JOIN LATERAL (VALUES (1, d.reply_tenths), (2, d.lag_bucket)) AS m (metric, bucket)
        WHERE d.received_month IS NOT NULL AND d.due_at IS NOT NULL AND d.status <> 6
          AND m.bucket IS NOT NULL
        GROUP BY d.direction, d.received_month, d.peer, d.kind, m.metric, m.bucket
        HAVING SUM(d.sign) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (direction, month, peer, kind, metric, bucket, shard) DO UPDATE SET n = t.n + excluded.n;
END;
$$;

-- One trigger per event: PostgreSQL gives transition tables only to
-- triggers of a single event.
CREATE FUNCTION migrex_notices_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM migrex_fold('{}', ARRAY(SELECT migrex_contribution(n) FROM new_rows n));
    RETURN NULL;
END;
$$;

CREATE FUNCTION migrex_notices_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM migrex_fold(ARRAY(SELECT migrex_contribution(o) FROM old_rows o), ARRAY(SELECT migrex_contribution(n) FROM new_rows n));
    RETURN NULL;
END;
$$;

CREATE FUNCTION migrex_notices_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM migrex_fold(ARRAY(SELECT migrex_contribution(o) FROM old_rows o), '{}');
    RETURN NULL;
END;
$$;

CREATE TRIGGER notices_inserted AFTER INSERT ON notices
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION migrex_notices_inserted();

CREATE TRIGGER notices_updated AFTER UPDATE ON notices
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION migrex_notices_updated();

CREATE TRIGGER notices_deleted AFTER DELETE ON notices
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION migrex_notices_deleted();
