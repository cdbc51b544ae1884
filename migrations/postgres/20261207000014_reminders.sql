-- Reminders (催办) about a notice: how many came (or were sent) and when
-- the last one was, on both sides; at most one a day per notice.
ALTER TABLE notices ADD COLUMN reminders BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notices ADD COLUMN reminded_at BIGINT;
