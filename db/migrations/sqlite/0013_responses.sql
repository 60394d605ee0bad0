-- The Responses and Conversations APIs. A response is a run (on a thread of
-- its own, which holds its output messages): the run carries the engine's
-- state; this row carries what only a response has.

CREATE TABLE conversations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}'
);

-- A conversation's items, in order. Deleting a conversation keeps them, as
-- OpenAI documents; nothing refers back to them but their conversation id.
CREATE TABLE conversation_items (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    item            TEXT NOT NULL
);
CREATE INDEX conversation_items_conversation ON conversation_items(conversation_id, seq);
CREATE UNIQUE INDEX conversation_items_id ON conversation_items(conversation_id, id);

CREATE TABLE responses (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT NOT NULL UNIQUE,
    run_id               TEXT NOT NULL UNIQUE REFERENCES runs(id) ON DELETE CASCADE,
    thread_id            TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    previous_response_id TEXT,
    conversation_id      TEXT,
    -- 1 while the response is unfinished: a conversation has at most one
    -- such response (responses_conversation_busy), OpenAI's
    -- conversation_locked.
    active               INTEGER NOT NULL DEFAULT 1,
    -- store: false keeps the response for its own execution only; it is
    -- never shown or continued from.
    stored               INTEGER NOT NULL DEFAULT 1,
    background           INTEGER NOT NULL DEFAULT 0,
    -- The request fields the Response object echoes (tools, text, …), JSON.
    echo                 TEXT NOT NULL DEFAULT '{}',
    -- The output items, JSON, written when the response finishes.
    output               TEXT,
    -- The same as the model read them, for the responses continuing from
    -- this one: a function call the server ran is followed by its output.
    history              TEXT
);
CREATE INDEX responses_previous ON responses(previous_response_id);
CREATE UNIQUE INDEX responses_conversation_busy ON responses(conversation_id)
    WHERE active = 1 AND conversation_id IS NOT NULL;

-- The input items of each response, in order.
CREATE TABLE response_input_items (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL,
    response_id TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
    item        TEXT NOT NULL
);
CREATE INDEX response_input_items_response ON response_input_items(response_id, seq);
