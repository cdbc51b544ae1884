-- Notices per (direction, kind, peer, status), kept exact by triggers in the
-- same transaction as every insert and status change, so that /metrics reads
-- a handful of rows instead of counting the whole notices table.
CREATE TABLE notice_counts (
    direction INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    peer      TEXT    NOT NULL,
    status    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (direction, kind, peer, status)
);

INSERT INTO notice_counts (direction, kind, peer, status, n)
    SELECT direction, kind, peer, status, COUNT(*) FROM notices GROUP BY direction, kind, peer, status;

CREATE TRIGGER notice_counts_insert AFTER INSERT ON notices
BEGIN
    INSERT INTO notice_counts (direction, kind, peer, status, n)
        VALUES (NEW.direction, NEW.kind, NEW.peer, NEW.status, 1)
        ON CONFLICT (direction, kind, peer, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER notice_counts_status AFTER UPDATE OF status ON notices
WHEN OLD.status <> NEW.status
BEGIN
    UPDATE notice_counts SET n = n - 1
        WHERE direction = OLD.direction AND kind = OLD.kind AND peer = OLD.peer AND status = OLD.status;
    INSERT INTO notice_counts (direction, kind, peer, status, n)
        VALUES (NEW.direction, NEW.kind, NEW.peer, NEW.status, 1)
        ON CONFLICT (direction, kind, peer, status) DO UPDATE SET n = n + 1;
END;
