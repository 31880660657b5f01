-- The line as flow A or flow C last read it: its `updated_at` (the partner's clock) and when the
-- daemon read it. Flow C decides `final_status` from a read made after the record was read
-- (design §1C), and an older read never overwrites a newer one.
ALTER TABLE loans ADD COLUMN line_updated_at REAL;
ALTER TABLE loans ADD COLUMN line_read_at REAL;
-- Failed look-ups of an in-doubt upload (design §2.7: after sync.max_lookups it is a dead letter).
ALTER TABLE loans ADD COLUMN lookups INTEGER NOT NULL DEFAULT 0;
-- A webhook without a payment reference asks for a read of the loan's payment_history, which
-- alone creates the ledger row (design §1B).
ALTER TABLE loans ADD COLUMN poll_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX loans_poll_requested ON loans (loan_id) WHERE poll_requested = 1;

-- Line items that cannot be processed for a reason of their own (lead or borrower-program gone):
-- dead letters of flow A that never hold the line-details cursor back (design §2.7).
CREATE TABLE line_dead_letters (
    line_id             TEXT PRIMARY KEY,
    lead_id             TEXT NOT NULL,
    borrower_program_id TEXT NOT NULL,
    reason              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 1,
    created_at          REAL NOT NULL,
    updated_at          REAL NOT NULL,
    ignored_reason      TEXT,
    -- an operator asked to process the line again on the next run
    retry               INTEGER NOT NULL DEFAULT 0
);

-- One identity per recovery (design §1B): the reference when present, else the `payment_id` of
-- its payment_history entry. Rows of the poll keyed by amount + date move to their payment_id.
-- Two old rows of one payment_id (the old key held amount and date, so a corrected amount made a
-- second row) cannot share the new key: the first keeps it, the others keep a key of their own.
UPDATE ledger
   SET source_key = 'B:' || loan_id || ':pid:' || json_extract(source, '$.payment_id')
 WHERE direction = 'crego'
   AND origin = 'credgenics_poll'
   AND trim(coalesce(json_extract(source, '$.payment_reference_number'),
                     json_extract(source, '$.reference_number'), '')) = ''
   AND json_extract(source, '$.payment_id') IS NOT NULL
   AND id = (SELECT min(l2.id) FROM ledger l2
              WHERE l2.direction = 'crego' AND l2.origin = 'credgenics_poll' AND l2.loan_id = ledger.loan_id
                AND json_extract(l2.source, '$.payment_id') = json_extract(ledger.source, '$.payment_id')
                AND trim(coalesce(json_extract(l2.source, '$.payment_reference_number'),
                                  json_extract(l2.source, '$.reference_number'), '')) = '');
-- Webhook rows without a reference carry no payment_id: they are set aside under a legacy key,
-- and the poll that finds their payment_history entry claims them (same loan, same amount)
-- instead of writing the recovery into the LMS a second time.
UPDATE ledger
   SET source_key = 'B:' || loan_id || ':legacy:' || id
 WHERE direction = 'crego'
   AND origin = 'credgenics_webhook'
   AND trim(coalesce(json_extract(source, '$.reference_number'),
                     json_extract(source, '$.payment_reference_number'), '')) = '';
