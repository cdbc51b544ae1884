-- Short references (编号) a clerk can read out on the telephone, such as
-- 440303-20261206-0042: the origin gives one to each notice it registers
-- (a counter per origin and Beijing day, taken in the registering
-- transaction) and the notice carries it to the destination. Notices
-- registered before this migration have none.
ALTER TABLE notices ADD COLUMN reference TEXT;
CREATE INDEX notices_reference ON notices (reference) WHERE reference IS NOT NULL;

CREATE TABLE reference_counters (
    key    TEXT    PRIMARY KEY,      -- <origin>-<YYYYMMDD>, Beijing day
    last   INTEGER NOT NULL
);

-- 综合查询 by name (姓名), exact, newest first per direction, as
-- `store::notices::list_notices_of` reads. Filled from the content for
-- notices stored before (`Store::backfill_names`, at start).
ALTER TABLE notices ADD COLUMN subject_name TEXT;
CREATE INDEX notices_name ON notices (direction, subject_name, created_at, id);

-- 综合查询 by ID number (身份证号), newest first per direction: one
-- person's notices walked in order, however many there are.
CREATE INDEX notices_subject ON notices (subject_id, direction, created_at, id);

-- 已办: inbound notices this district signed for or answered, the latest
-- of those acts first (`store::notices::handled`).
CREATE INDEX notices_handled ON notices (COALESCE(answered_at, acknowledged_at), id)
    WHERE direction = 2 AND (answered_at IS NOT NULL OR acknowledged_at IS NOT NULL);
