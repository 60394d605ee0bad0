-- The responses made on a conversation, in order: the playground shows a
-- conversation with each response's run (its steps, its upstream
-- requests) and follows the newest.
CREATE INDEX responses_conversation ON responses(conversation_id, seq);
