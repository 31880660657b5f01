-- What Credgenics held of a loan at its last full read (`GET /loan/{id}?fields=loan,payment`, by
-- the nightly poll or by reconcile): reconcile reuses the poll's read instead of reading each
-- loan twice a night. body: {"defaults": [...], "payment_history": [...]}.
CREATE TABLE credgenics_reads (
    loan_id TEXT PRIMARY KEY,
    read_at REAL NOT NULL,
    body    TEXT NOT NULL
);

-- Reconcile runs (issue 14): one row per run, its totals and counts by kind kept as history; a
-- run stopped early (SIGTERM, an unreachable partner) has no finished_at, and the next run of
-- the same scope resumes after its cursor (the last loan id checked).
CREATE TABLE reconcile_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    scope            TEXT NOT NULL,
    started_at       REAL NOT NULL,
    finished_at      REAL,
    cursor           TEXT NOT NULL DEFAULT '',
    loans_checked    INTEGER NOT NULL DEFAULT 0,
    agreeing         INTEGER NOT NULL DEFAULT 0,
    unreadable       INTEGER NOT NULL DEFAULT 0,
    lms_total        TEXT NOT NULL DEFAULT '0',
    credgenics_total TEXT NOT NULL DEFAULT '0',
    counts           TEXT NOT NULL DEFAULT '{}'
);

-- The findings of the latest runs (older runs keep only their counts).
CREATE TABLE reconcile_findings (
    run_id     INTEGER NOT NULL REFERENCES reconcile_runs (id),
    loan_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    month      TEXT,
    reference  TEXT,
    lms        TEXT,
    credgenics TEXT,
    detail     TEXT NOT NULL,
    action     TEXT NOT NULL,
    fixed      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX reconcile_findings_run ON reconcile_findings (run_id, loan_id);
