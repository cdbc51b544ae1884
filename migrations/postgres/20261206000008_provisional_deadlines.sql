-- Deadlines counted past the last year of the official holiday schedule
-- (时限（暂定）); see migrations/sqlite/20261206000010_provisional_deadlines.sql.
ALTER TABLE notices ADD COLUMN due_provisional BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notices ADD COLUMN due_working_days BIGINT;

CREATE INDEX notices_provisional ON notices (id) WHERE due_provisional = 1;
