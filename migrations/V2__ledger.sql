-- The payment ledger (design §2): one row per payment to deliver, written before any request.
CREATE TABLE ledger (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'credgenics' (flow C: LMS repayment -> Credgenics payment) or 'crego' (flow B: recovery -> record)
    direction        TEXT NOT NULL,
    -- deterministic idempotency key: C = 'C:' + record id; B = 'B:' + loan id + ':' + reference
    -- (or amount + recovery date when the reference is empty)
    source_key       TEXT NOT NULL UNIQUE,
    loan_id          TEXT NOT NULL,
    -- exact decimal text, never a float
    amount           TEXT NOT NULL,
    -- C: the record's utr; B: the Crego utr written (the payment reference or CG-<hash>)
    reference        TEXT NOT NULL,
    allocation_month TEXT,
    -- the mapped request body, exactly as sent
    payload          TEXT,
    -- pending -> in_flight -> done; dead with dead_reason
    state            TEXT NOT NULL,
    dead_reason      TEXT,
    ignored_reason   TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL DEFAULT 0,
    last_error       TEXT,
    -- id created on the other side (the Crego record id for B)
    remote_id        TEXT,
    -- crego_record | credgenics_webhook | credgenics_poll
    origin           TEXT NOT NULL,
    -- the source item (record or payment) as received
    source           TEXT NOT NULL,
    -- when the payment happened (record date / recovery date), epoch seconds
    event_at         REAL NOT NULL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX ledger_due ON ledger (direction, state, next_attempt_at);
CREATE INDEX ledger_reference ON ledger (direction, loan_id, reference);

-- Webhook events as received, committed before the 200.
CREATE TABLE webhook_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    event       TEXT NOT NULL,
    body        TEXT NOT NULL,
    -- the ledger row it produced, if any
    ledger_key  TEXT
);

-- The line's numbers as last seen by flow A (flow C decides Closed from them), and the poll mark.
ALTER TABLE loans ADD COLUMN due_amount TEXT;
ALTER TABLE loans ADD COLUMN total_outstanding TEXT;
ALTER TABLE loans ADD COLUMN last_polled_at REAL;
