-- The scheduler's memory: the last slot each job ran for (epoch seconds), so a restart catches up
-- at most one missed slot.
CREATE TABLE job_slots (
    job         TEXT PRIMARY KEY,
    last_slot   REAL NOT NULL,
    last_ok_at  REAL,
    last_error  TEXT
);

-- When each stream was last read to its end with nothing left behind (readiness).
ALTER TABLE cursors ADD COLUMN checked_at REAL;

-- Dead letters set aside by an operator, and loans an operator asked to send again.
ALTER TABLE loans ADD COLUMN ignored_reason TEXT;
ALTER TABLE loans ADD COLUMN resync INTEGER NOT NULL DEFAULT 0;
