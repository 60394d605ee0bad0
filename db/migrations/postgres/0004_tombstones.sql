-- Deleted objects keep their place in list order for a while, so a client
-- that deletes items while paging through a list can still continue from them.
CREATE TABLE tombstones (
    tbl        TEXT NOT NULL,
    id         TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL,
    PRIMARY KEY (tbl, id)
);
CREATE INDEX tombstones_age ON tombstones(deleted_at);
