-- Reconciliations (对账, issue 23 item 3; docs/protocol.md §8): per peer
-- and month, the last time this node compared its records with the peer's,
-- what it found, and the last time both sides agreed (kept while they
-- disagree, so 统计 and the monthly report can say since when).
CREATE TABLE reconciliations (
    key        TEXT PRIMARY KEY,  -- "PEER YYYY-MM"
    peer       TEXT    NOT NULL,
    period     TEXT    NOT NULL,  -- YYYY-MM
    checked_at BIGINT  NOT NULL,  -- microseconds
    notices    BIGINT  NOT NULL,  -- notices of the month on this side
    divergent  BIGINT  NOT NULL,
    agreed_at  BIGINT             -- the last check that found no difference
);

CREATE INDEX reconciliations_period ON reconciliations (period, peer);
