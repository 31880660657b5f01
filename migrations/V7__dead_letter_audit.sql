-- Who set a dead letter aside or sent it again, when and why (issue 15): an ignored letter no
-- longer vanishes without a trace.
CREATE TABLE dead_letter_audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    -- `payment:<n>`, `loan:<loan id>` or `line:<line id>`, as `dead-letters list` names it
    target TEXT NOT NULL,
    -- 'ignored' | 'retried'
    action TEXT NOT NULL,
    reason TEXT,
    -- the operator's login (SUDO_USER, USER) as the command saw it
    actor  TEXT NOT NULL,
    at     REAL NOT NULL
);
CREATE INDEX dead_letter_audit_target ON dead_letter_audit (target, id);
