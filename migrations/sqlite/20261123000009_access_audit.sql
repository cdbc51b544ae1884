-- The access audit (访问审计): one entry per notice a staff member read
-- with its person's details or changed; each holds the hash of the one
-- before (`audit::chain_hash`). `subject` is a keyed hash of the ID number.
CREATE TABLE access_audit (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    token_id   INTEGER,
    operation  TEXT    NOT NULL,
    notice_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
CREATE INDEX access_audit_subject ON access_audit (subject, seq);
CREATE INDEX access_audit_actor ON access_audit (actor, seq);
