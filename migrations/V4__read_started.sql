-- When the last read of each stream that reached its end started, by the real wall clock (epoch
-- seconds, compared with the partner's `updated_at`): the next read re-reads the overlap window
-- only as far as items could have been invisible to that read.
ALTER TABLE cursors ADD COLUMN read_started_at REAL;
