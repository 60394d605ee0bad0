-- Runs, run steps and tool calls.

CREATE TABLE runs (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
    id                    TEXT NOT NULL UNIQUE,
    thread_id             TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    assistant_id          TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('queued', 'in_progress', 'requires_action', 'cancelling',
                              'cancelled', 'failed', 'completed', 'incomplete', 'expired')),
    required_action       TEXT,
    last_error            TEXT,
    expires_at            INTEGER,
    started_at            INTEGER,
    cancelled_at          INTEGER,
    failed_at             INTEGER,
    completed_at          INTEGER,
    incomplete_details    TEXT,
    model                 TEXT NOT NULL,
    instructions          TEXT NOT NULL DEFAULT '',
    tools                 TEXT NOT NULL DEFAULT '[]',
    tool_resources        TEXT NOT NULL DEFAULT '{}',
    metadata              TEXT NOT NULL DEFAULT '{}',
    usage                 TEXT,
    temperature           REAL,
    top_p                 REAL,
    max_prompt_tokens     INTEGER,
    max_completion_tokens INTEGER,
    truncation_strategy   TEXT NOT NULL,
    tool_choice           TEXT NOT NULL DEFAULT '"auto"',
    parallel_tool_calls   INTEGER NOT NULL DEFAULT 1,
    response_format       TEXT NOT NULL DEFAULT '"auto"',
    reasoning_effort      TEXT,
    -- The last thread message (by seq) the run's prompt starts from: the
    -- run's own steps are replayed after it when later runs build history.
    history_seq           INTEGER NOT NULL DEFAULT 0,
    -- How many times a worker has started executing the run (recovery caps it).
    attempts              INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_thread ON runs(thread_id, seq);
CREATE INDEX runs_status ON runs(status) WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');

-- At most one non-terminal run per thread, enforced by the database itself.
CREATE UNIQUE INDEX runs_one_active ON runs(thread_id)
    WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');

-- The legal status transitions of the run lifecycle.
CREATE TABLE run_transitions (
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    PRIMARY KEY (from_status, to_status)
) WITHOUT ROWID;
INSERT INTO run_transitions (from_status, to_status) VALUES
    ('queued', 'in_progress'), ('queued', 'cancelling'), ('queued', 'cancelled'), ('queued', 'failed'), ('queued', 'expired'),
    ('in_progress', 'requires_action'), ('in_progress', 'completed'), ('in_progress', 'incomplete'), ('in_progress', 'failed'),
    ('in_progress', 'cancelling'), ('in_progress', 'expired'),
    ('requires_action', 'queued'), ('requires_action', 'cancelling'), ('requires_action', 'expired'), ('requires_action', 'failed'),
    ('cancelling', 'cancelled'), ('cancelling', 'completed'), ('cancelling', 'failed'), ('cancelling', 'incomplete'),
    ('cancelling', 'expired');

CREATE TRIGGER runs_legal_transition BEFORE UPDATE OF status ON runs
WHEN OLD.status <> NEW.status AND NOT EXISTS (
    SELECT 1 FROM run_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
BEGIN
    SELECT RAISE(ABORT, 'illegal run status transition');
END;

CREATE TABLE run_steps (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    thread_id    TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('message_creation', 'tool_calls')),
    status       TEXT NOT NULL CHECK (status IN ('in_progress', 'cancelled', 'failed', 'completed', 'expired')),
    step_details TEXT NOT NULL,
    last_error   TEXT,
    expired_at   INTEGER,
    cancelled_at INTEGER,
    failed_at    INTEGER,
    completed_at INTEGER,
    metadata     TEXT NOT NULL DEFAULT '{}',
    -- Usage is recorded when the model turn ends and shown once the step
    -- is no longer in progress.
    usage        TEXT
);
CREATE INDEX run_steps_run ON run_steps(run_id, seq);

-- Tool call ids are unique across the whole store.
CREATE TABLE tool_calls (
    id      TEXT PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX tool_calls_run ON tool_calls(run_id);
