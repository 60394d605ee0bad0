-- What a run carries for the response it serves, so the engine need not
-- look the response up on every turn: its id (NULL for an Assistants run)
-- and max_tool_calls, the cap on its built-in tool calls (NULL: none).
ALTER TABLE runs ADD COLUMN response_id TEXT;
ALTER TABLE runs ADD COLUMN max_tool_calls BIGINT;
UPDATE runs SET response_id = (SELECT r.id FROM responses r WHERE r.run_id = runs.id)
    WHERE id IN (SELECT run_id FROM responses);

-- The reasoning a model turn streamed before its message or tool calls
-- (reasoning_content), JSON {id, text, tokens}, on the step the turn made;
-- a response shows it as a reasoning output item. NULL: none.
ALTER TABLE run_steps ADD COLUMN reasoning TEXT;
-- A finished response's reasoning tokens, as its upstream reported them.
ALTER TABLE responses ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;

-- store: false responses, for the sweep that removes those a dead process
-- left behind.
CREATE INDEX responses_unstored ON responses(seq) WHERE stored = 0;
