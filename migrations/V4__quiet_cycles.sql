-- When the last read of each stream that reached its end started, by the real wall clock (epoch
-- seconds, compared with the partner's `updated_at`): the next read re-reads the overlap window
-- only as far as items could have been invisible to that read.
ALTER TABLE cursors ADD COLUMN read_started_at REAL;

-- Every flow A run asks for the loans an operator asked to resync: without an index that read the
-- whole loans table each time.
CREATE INDEX loans_resync ON loans (loan_id) WHERE resync = 1;
