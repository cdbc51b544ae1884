-- Which process delivers to a route, until when. Several replicas of a node
-- share one database (PostgreSQL); each route's outbox is delivered by one of
-- them at a time, in order, and a replica that dies leaves its routes to the
-- others when its lease runs out. On SQLite (one process) it is one cheap
-- upsert per batch.
CREATE TABLE route_leases (
    route  TEXT    PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
);
