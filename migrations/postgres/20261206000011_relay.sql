-- Items this node accepted as the directory's relay (中转) for other
-- districts: kept after they were forwarded, so that an item handed over
-- again is answered as the first time and forwarded once.
CREATE TABLE relayed (
    item         BIGINT NOT NULL,  -- 1 notice, 2 reply
    id           TEXT    NOT NULL,  -- the notice id or reply id
    content_hash BYTEA   NOT NULL,
    source       TEXT    NOT NULL,  -- the district whose node handed it over
    author       TEXT    NOT NULL,  -- the notice's origin, the reply's author
    target       TEXT    NOT NULL,  -- where it goes
    accepted_at  BIGINT  NOT NULL,
    forwarded_at BIGINT,            -- when the next node acknowledged it
    PRIMARY KEY (item, id)
);

-- The outbox's relayed items (3 notice, 4 reply) by where they go.
CREATE INDEX outbox_relayed ON outbox (item, target) WHERE item >= 3;
