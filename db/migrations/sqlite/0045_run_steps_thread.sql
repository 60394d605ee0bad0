-- A run's turn reads its thread's steps (ThreadSteps, to rebuild the
-- history it sends the model): without this index every turn scanned
-- every step of every thread, so runs slowed as the store grew.
CREATE INDEX run_steps_thread ON run_steps(thread_id, seq);
