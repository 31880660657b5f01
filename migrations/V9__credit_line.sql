-- Credit-line mode (design §8): a Crego line is one Credgenics customer, each overdue drawdown
-- (a loan or topup under the line) one transaction. Lending mode never writes these tables.

-- One row per customer: the line (borrower-program) it stands for.
CREATE TABLE cl_customers (
    customer_id         TEXT PRIMARY KEY,
    borrower_program_id TEXT NOT NULL UNIQUE,
    lead_id             TEXT NOT NULL,
    -- when the poll (flow B) last read the customer's payment history
    last_polled_at      REAL,
    -- a payment webhook named the customer (or one of its transactions): read it on the next run
    poll_requested      INTEGER NOT NULL DEFAULT 0,
    updated_at          REAL NOT NULL
);

-- One row per transaction (drawdown), its upload state as for a lending loan.
CREATE TABLE cl_transactions (
    transaction_id      TEXT PRIMARY KEY,
    customer_id         TEXT NOT NULL REFERENCES cl_customers (customer_id),
    -- the Crego loan or topup id (what LMS records name in loans[] / topup)
    drawdown_id         TEXT NOT NULL,
    -- loan | topup
    kind                TEXT NOT NULL,
    -- the drawdown's date (epoch seconds): "oldest overdue first" orders by it
    opened_at           REAL NOT NULL,
    -- latest allocation month accepted (YYYY-M-01), NULL before the first upload
    allocation_month    TEXT,
    -- uploading (in doubt) | placed | cured | closed | rejected
    state               TEXT NOT NULL,
    payload             TEXT,
    payload_hash        TEXT,
    pending_payload     TEXT,
    pending_month       TEXT,
    rejected_hash       TEXT,
    last_error          TEXT,
    -- when its first upload was recorded in flight (records dated before travel no more)
    first_placed_at     REAL,
    -- the drawdown's numbers as last read, and when (flow C decides Closed from them)
    due_amount          TEXT,
    total_outstanding   TEXT,
    drawdown_updated_at REAL,
    read_at             REAL,
    updated_at          REAL NOT NULL
);
CREATE INDEX cl_transactions_customer ON cl_transactions (customer_id);
CREATE INDEX cl_transactions_drawdown ON cl_transactions (drawdown_id);

CREATE TABLE cl_allocations (
    transaction_id   TEXT NOT NULL REFERENCES cl_transactions (transaction_id),
    allocation_month TEXT NOT NULL,
    uploaded_at      REAL NOT NULL,
    PRIMARY KEY (transaction_id, allocation_month)
);
