-- The node's whole state. Instants are Unix microseconds (UTC), calendar
-- dates are 'YYYY-MM-DD' text, enums are their protobuf numbers.

-- Notices of both directions. `content` is the origin's notice in its wire
-- form (protobuf), identical on both nodes; `content_hash` makes receipt
-- idempotent (same id + same hash = redelivery, other hash = conflict).
CREATE TABLE notices (
    id              TEXT PRIMARY KEY,
    direction       INTEGER NOT NULL,          -- 1 OUTBOUND, 2 INBOUND
    peer            TEXT    NOT NULL,          -- destination (outbound) or origin (inbound)
    origin          TEXT    NOT NULL,
    destination     TEXT    NOT NULL,
    kind            INTEGER NOT NULL,
    category        INTEGER NOT NULL,
    urgency         INTEGER NOT NULL,
    reply_required  INTEGER NOT NULL,          -- 1 RECEIPT, 2 FEEDBACK
    subject_id      TEXT    NOT NULL,
    event_date      TEXT    NOT NULL,
    content         BLOB    NOT NULL,
    content_hash    BLOB    NOT NULL,
    status          INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    received_at     INTEGER,
    due_at          INTEGER,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    answered_at     INTEGER,
    feedback        BLOB,
    withdrawn_at    INTEGER,
    withdraw_reason TEXT,
    duplicate_of    TEXT
);

CREATE INDEX notices_pending ON notices (direction, status, due_at);
CREATE INDEX notices_event ON notices (subject_id, kind, event_date);
CREATE INDEX notices_created ON notices (direction, created_at);
CREATE INDEX notices_received ON notices (direction, received_at);

-- Every reply this node wrote or received: receipts, feedback, withdrawals.
-- reply_id is chosen by the author, so redelivery is idempotent.
CREATE TABLE replies (
    reply_id     TEXT PRIMARY KEY,
    notice_id    TEXT    NOT NULL REFERENCES notices (id),
    direction    INTEGER NOT NULL,             -- 1 written here, 2 received
    sort         INTEGER NOT NULL,             -- 1 receipt, 2 feedback, 3 withdrawal
    content      BLOB    NOT NULL,
    content_hash BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER
);

CREATE INDEX replies_notice ON replies (notice_id);

-- The transactional outbox: one row per notice or reply to deliver, written
-- in the same transaction as the state change it announces, deleted in the
-- same transaction that records the peer's acknowledgement.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    route           TEXT    NOT NULL,          -- the route prefix (peer) it goes to
    target          TEXT    NOT NULL,          -- the district it is addressed to
    item            INTEGER NOT NULL,          -- 1 notice, 2 reply
    notice_id       TEXT    NOT NULL,
    reply_id        TEXT,
    payload         BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    refused         INTEGER NOT NULL DEFAULT 0 -- 1: the peer refused it for good
);

CREATE INDEX outbox_route ON outbox (route, refused, seq);
CREATE INDEX outbox_notice ON outbox (notice_id);

-- Staff tokens, stored as SHA-256 hashes only.
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
