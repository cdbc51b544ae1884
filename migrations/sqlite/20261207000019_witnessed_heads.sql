-- Witnessing (issue 23, item 4; docs/protocol.md §5): the signed heads of
-- their access audits that peers send this node, at least daily and when
-- they stop. A peer's `migrex audit verify` asks for the ones kept of it
-- and compares them with its chain, so entries deleted from its end, all
-- of them, or a rewritten chain are seen from outside its database.
-- At most 64 are kept per district (the longest among them always).
CREATE TABLE witnessed_heads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    district    TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    hash        TEXT    NOT NULL,
    keyed_from  BIGINT,
    at_micros   BIGINT  NOT NULL,
    signature   TEXT    NOT NULL,
    received_at BIGINT  NOT NULL
);

CREATE INDEX witnessed_heads_district ON witnessed_heads (district, seq);
