-- Deleted objects keep their place in list order for a while, so a client
-- that deletes items while paging through a list (the SDKs page with
-- after=<last id of the previous page>) can still continue from them.
CREATE TABLE tombstones (
    tbl        TEXT NOT NULL,
    id         TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL,
    PRIMARY KEY (tbl, id)
) WITHOUT ROWID;
CREATE INDEX tombstones_age ON tombstones(deleted_at);
