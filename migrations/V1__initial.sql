-- Stream cursors: the highest `updated_at` (epoch seconds) fully processed per change stream.
CREATE TABLE cursors (
    stream      TEXT PRIMARY KEY,
    value       REAL NOT NULL,
    advanced_at REAL NOT NULL
);

-- Items processed inside the overlap window, so re-listing them costs no request.
CREATE TABLE stream_seen (
    stream     TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (stream, item_id)
);

-- One row per Credgenics loan (one Crego borrower-program).
CREATE TABLE loans (
    loan_id             TEXT PRIMARY KEY,
    borrower_program_id TEXT NOT NULL UNIQUE,
    lead_id             TEXT NOT NULL,
    program_id          TEXT,
    -- latest allocation month accepted by Credgenics (YYYY-M-01), NULL before the first upload
    allocation_month    TEXT,
    -- uploading (in doubt) | placed | cured | closed | rejected
    state               TEXT NOT NULL,
    -- last payload Credgenics accepted (JSON) and its hash
    payload             TEXT,
    payload_hash        TEXT,
    -- an upload sent (or about to be) whose outcome is not known yet: its payload and month
    pending_payload     TEXT,
    pending_month       TEXT,
    -- hash of the last payload Credgenics rejected, so the same one is not sent again
    rejected_hash       TEXT,
    -- field -> message of the last rejection, or another error text
    last_error          TEXT,
    -- when the first upload was accepted (epoch seconds)
    first_placed_at     REAL,
    updated_at          REAL NOT NULL
);
CREATE INDEX loans_state ON loans (state);

-- Every allocation month a loan was uploaded for.
CREATE TABLE allocations (
    loan_id          TEXT NOT NULL REFERENCES loans (loan_id),
    allocation_month TEXT NOT NULL,
    uploaded_at      REAL NOT NULL,
    PRIMARY KEY (loan_id, allocation_month)
);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    outcome     TEXT,
    summary     TEXT
);
