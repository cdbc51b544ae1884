-- Deadlines counted past the last year of the official holiday schedule
-- (时限（暂定）): a working-day deadline that runs into a year whose
-- schedule the destination does not have yet is counted by the plain week
-- and marked, and counted again when the schedule is loaded
-- (exchange::deadlines). `due_provisional` is 1 for such a deadline on
-- both sides; `due_working_days` is the destination's count of working
-- days (what it counts again from), NULL for calendar-day deadlines.
ALTER TABLE notices ADD COLUMN due_provisional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notices ADD COLUMN due_working_days INTEGER;

-- The few provisional deadlines, found without walking the open notices.
CREATE INDEX notices_provisional ON notices (id) WHERE due_provisional = 1;
