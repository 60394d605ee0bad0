-- What the model sent to and read from each server-side tool call of a
-- tool_calls step, keyed by tool call id (JSON). History replays it to the
-- model, and a restart resumes only the calls without an output, so no
-- finished tool runs twice. Not part of the API's step object.
ALTER TABLE run_steps ADD COLUMN tool_io TEXT;
