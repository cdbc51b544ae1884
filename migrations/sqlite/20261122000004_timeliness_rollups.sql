-- Roll-ups for timeliness reports (SPEC.md section 4), kept exact by
-- triggers in the same transaction as every change of a notice, so that a
-- report over whole months reads a few thousand roll-up rows instead of every
-- notice of the period. ARCHITECTURE.md ("Timeliness figures") explains how
-- a report at time T is assembled from them and why it equals the raw recount.

-- The local month (YYYYMM, in the node's timezone) of received_at. Written by
-- the store with received_at; recomputed for every notice when the node's
-- timezone changes (the store records the timezone in store_meta).
ALTER TABLE notices ADD COLUMN received_month INTEGER;

-- Reply latency in tenths of a day (truncated), to the reply the notice
-- needs: feedback when feedback is required, else the receipt (feedback counts).
ALTER TABLE notices ADD COLUMN reply_tenths INTEGER GENERATED ALWAYS AS (
    (CASE WHEN reply_required = 2 THEN answered_at
          ELSE COALESCE(acknowledged_at, answered_at) END - received_at) / 8640000000
) VIRTUAL;

-- Delivery lag in milliseconds, truncated to two significant digits.
ALTER TABLE notices ADD COLUMN lag_ms INTEGER GENERATED ALWAYS AS (
    (received_at - created_at) / 1000
) VIRTUAL;
ALTER TABLE notices ADD COLUMN lag_bucket INTEGER GENERATED ALWAYS AS (
    CASE WHEN abs(lag_ms) < 100 THEN lag_ms
         WHEN abs(lag_ms) < 1000 THEN lag_ms / 10 * 10
         WHEN abs(lag_ms) < 10000 THEN lag_ms / 100 * 100
         WHEN abs(lag_ms) < 100000 THEN lag_ms / 1000 * 1000
         WHEN abs(lag_ms) < 1000000 THEN lag_ms / 10000 * 10000
         WHEN abs(lag_ms) < 10000000 THEN lag_ms / 100000 * 100000
         WHEN abs(lag_ms) < 100000000 THEN lag_ms / 1000000 * 1000000
         WHEN abs(lag_ms) < 1000000000 THEN lag_ms / 10000000 * 10000000
         WHEN abs(lag_ms) < 10000000000 THEN lag_ms / 100000000 * 100000000
         WHEN abs(lag_ms) < 100000000000 THEN lag_ms / 1000000000 * 1000000000
         ELSE lag_ms / 10000000000 * 10000000000 END
) VIRTUAL;

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Per (direction, month, peer, kind, due_at): counts of cohort notices as if
-- every stored reply had been made by report time. Keyed by due_at because
-- "due_at <= T" decides several figures; deadlines end at the end of a day,
-- so a month holds a few dozen distinct due_at values per group.
CREATE TABLE timeliness_counts (
    direction        INTEGER NOT NULL,
    month            INTEGER NOT NULL,
    peer             TEXT    NOT NULL,
    kind             INTEGER NOT NULL,
    due_at           INTEGER NOT NULL,
    received         INTEGER NOT NULL,  -- cohort notices
    acknowledged     INTEGER NOT NULL,  -- receipt or feedback stored
    acknowledged_timely INTEGER NOT NULL,
    needs_feedback   INTEGER NOT NULL,
    needs_feedback_answered INTEGER NOT NULL,
    answered         INTEGER NOT NULL,
    answered_timely  INTEGER NOT NULL,
    replied          INTEGER NOT NULL,  -- the reply the notice needs is stored
    PRIMARY KEY (direction, month, peer, kind, due_at)
) WITHOUT ROWID;

-- Per (direction, month, peer, kind, metric, bucket): how many cohort
-- notices fall in the bucket. Metric 1: reply_tenths; metric 2: lag_bucket.
CREATE TABLE timeliness_latency (
    direction INTEGER NOT NULL,
    month     INTEGER NOT NULL,
    peer      TEXT    NOT NULL,
    kind      INTEGER NOT NULL,
    metric    INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (direction, month, peer, kind, metric, bucket)
) WITHOUT ROWID;

-- Notices with a reply stamped after a report time: the only ones whose
-- contribution the roll-ups cannot give for that time (normally none).
CREATE INDEX notices_last_reply ON notices (
    direction, max(COALESCE(acknowledged_at, 0), COALESCE(answered_at, 0))
);

CREATE TRIGGER timeliness_insert AFTER INSERT ON notices
WHEN NEW.received_month IS NOT NULL AND NEW.due_at IS NOT NULL AND NEW.status <> 6
BEGIN
    INSERT INTO timeliness_counts VALUES (
        NEW.direction, NEW.received_month, NEW.peer, NEW.kind, NEW.due_at, 1,
        COALESCE(NEW.acknowledged_at, NEW.answered_at) IS NOT NULL,
        COALESCE(COALESCE(NEW.acknowledged_at, NEW.answered_at) <= NEW.due_at, 0),
        NEW.reply_required = 2,
        NEW.reply_required = 2 AND NEW.answered_at IS NOT NULL,
        NEW.answered_at IS NOT NULL,
        COALESCE(NEW.answered_at <= NEW.due_at, 0),
        NEW.reply_tenths IS NOT NULL)
    ON CONFLICT (direction, month, peer, kind, due_at) DO UPDATE SET
        received = received + 1,
        acknowledged = acknowledged + excluded.acknowledged,
        acknowledged_timely = acknowledged_timely + excluded.acknowledged_timely,
        needs_feedback = needs_feedback + excluded.needs_feedback,
        needs_feedback_answered = needs_feedback_answered + excluded.needs_feedback_answered,
        answered = answered + excluded.answered,
        answered_timely = answered_timely + excluded.answered_timely,
        replied = replied + excluded.replied;
    INSERT INTO timeliness_latency
        SELECT NEW.direction, NEW.received_month, NEW.peer, NEW.kind, 1, NEW.reply_tenths, 1
        WHERE NEW.reply_tenths IS NOT NULL
    ON CONFLICT (direction, month, peer, kind, metric, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO timeliness_latency
        VALUES (NEW.direction, NEW.received_month, NEW.peer, NEW.kind, 2, NEW.lag_bucket, 1)
    ON CONFLICT (direction, month, peer, kind, metric, bucket) DO UPDATE SET n = n + 1;
END;

-- Any change that moves a notice's contribution: take the old one out, put
-- the new one in.
CREATE TRIGGER timeliness_update AFTER UPDATE ON notices
WHEN OLD.received_month IS NOT NEW.received_month OR OLD.due_at IS NOT NEW.due_at
  OR (OLD.status = 6) <> (NEW.status = 6)
  OR OLD.acknowledged_at IS NOT NEW.acknowledged_at OR OLD.answered_at IS NOT NEW.answered_at
  OR OLD.received_at IS NOT NEW.received_at OR OLD.created_at <> NEW.created_at
  OR OLD.reply_required <> NEW.reply_required OR OLD.peer <> NEW.peer
  OR OLD.kind <> NEW.kind OR OLD.direction <> NEW.direction
BEGIN
    UPDATE timeliness_counts SET
        received = received - 1,
        acknowledged = acknowledged - (COALESCE(OLD.acknowledged_at, OLD.answered_at) IS NOT NULL),
        acknowledged_timely = acknowledged_timely - COALESCE(COALESCE(OLD.acknowledged_at, OLD.answered_at) <= OLD.due_at, 0),
        needs_feedback = needs_feedback - (OLD.reply_required = 2),
        needs_feedback_answered = needs_feedback_answered - (OLD.reply_required = 2 AND OLD.answered_at IS NOT NULL),
        answered = answered - (OLD.answered_at IS NOT NULL),
        answered_timely = answered_timely - COALESCE(OLD.answered_at <= OLD.due_at, 0),
        replied = replied - (OLD.reply_tenths IS NOT NULL)
    WHERE OLD.received_month IS NOT NULL AND OLD.due_at IS NOT NULL AND OLD.status <> 6
      AND direction = OLD.direction AND month = OLD.received_month AND peer = OLD.peer
      AND kind = OLD.kind AND due_at = OLD.due_at;
    UPDATE timeliness_latency SET n = n - 1
    WHERE OLD.received_month IS NOT NULL AND OLD.due_at IS NOT NULL AND OLD.status <> 6
      AND direction = OLD.direction AND month = OLD.received_month AND peer = OLD.peer
      AND kind = OLD.kind AND metric = 1 AND bucket = OLD.reply_tenths;
    UPDATE timeliness_latency SET n = n - 1
    WHERE OLD.received_month IS NOT NULL AND OLD.due_at IS NOT NULL AND OLD.status <> 6
      AND direction = OLD.direction AND month = OLD.received_month AND peer = OLD.peer
      AND kind = OLD.kind AND metric = 2 AND bucket = OLD.lag_bucket;
    INSERT INTO timeliness_counts
        SELECT NEW.direction, NEW.received_month, NEW.peer, NEW.kind, NEW.due_at, 1,
            COALESCE(NEW.acknowledged_at, NEW.answered_at) IS NOT NULL,
            COALESCE(COALESCE(NEW.acknowledged_at, NEW.answered_at) <= NEW.due_at, 0),
            NEW.reply_required = 2,
            NEW.reply_required = 2 AND NEW.answered_at IS NOT NULL,
            NEW.answered_at IS NOT NULL,
            COALESCE(NEW.answered_at <= NEW.due_at, 0),
            NEW.reply_tenths IS NOT NULL
        WHERE NEW.received_month IS NOT NULL AND NEW.due_at IS NOT NULL AND NEW.status <> 6
    ON CONFLICT (direction, month, peer, kind, due_at) DO UPDATE SET
        received = received + 1,
        acknowledged = acknowledged + excluded.acknowledged,
        acknowledged_timely = acknowledged_timely + excluded.acknowledged_timely,
        needs_feedback = needs_feedback + excluded.needs_feedback,
        needs_feedback_answered = needs_feedback_answered + excluded.needs_feedback_answered,
        answered = answered + excluded.answered,
        answered_timely = answered_timely + excluded.answered_timely,
        replied = replied + excluded.replied;
    INSERT INTO timeliness_latency
        SELECT NEW.direction, NEW.received_month, NEW.peer, NEW.kind, 1, NEW.reply_tenths, 1
        WHERE NEW.received_month IS NOT NULL AND NEW.due_at IS NOT NULL AND NEW.status <> 6
          AND NEW.reply_tenths IS NOT NULL
    ON CONFLICT (direction, month, peer, kind, metric, bucket) DO UPDATE SET n = n + 1;
    INSERT INTO timeliness_latency
        SELECT NEW.direction, NEW.received_month, NEW.peer, NEW.kind, 2, NEW.lag_bucket, 1
        WHERE NEW.received_month IS NOT NULL AND NEW.due_at IS NOT NULL AND NEW.status <> 6
    ON CONFLICT (direction, month, peer, kind, metric, bucket) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER timeliness_delete AFTER DELETE ON notices
WHEN OLD.received_month IS NOT NULL AND OLD.due_at IS NOT NULL AND OLD.status <> 6
BEGIN
    UPDATE timeliness_counts SET
        received = received - 1,
        acknowledged = acknowledged - (COALESCE(OLD.acknowledged_at, OLD.answered_at) IS NOT NULL),
        acknowledged_timely = acknowledged_timely - COALESCE(COALESCE(OLD.acknowledged_at, OLD.answered_at) <= OLD.due_at, 0),
        needs_feedback = needs_feedback - (OLD.reply_required = 2),
        needs_feedback_answered = needs_feedback_answered - (OLD.reply_required = 2 AND OLD.answered_at IS NOT NULL),
        answered = answered - (OLD.answered_at IS NOT NULL),
        answered_timely = answered_timely - COALESCE(OLD.answered_at <= OLD.due_at, 0),
        replied = replied - (OLD.reply_tenths IS NOT NULL)
    WHERE direction = OLD.direction AND month = OLD.received_month AND peer = OLD.peer
      AND kind = OLD.kind AND due_at = OLD.due_at;
    UPDATE timeliness_latency SET n = n - 1
    WHERE direction = OLD.direction AND month = OLD.received_month AND peer = OLD.peer
      AND kind = OLD.kind AND metric = 1 AND bucket = OLD.reply_tenths;
    UPDATE timeliness_latency SET n = n - 1
    WHERE direction = OLD.direction AND month = OLD.received_month AND peer = OLD.peer
      AND kind = OLD.kind AND metric = 2 AND bucket = OLD.lag_bucket;
END;
