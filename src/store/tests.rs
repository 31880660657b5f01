//! Unit tests of the store: locking, permissions, cursors, migrations of older states.

use std::path::PathBuf;

use rusqlite::{Connection, params};
use rust_decimal::Decimal;

use super::db::{embedded, migrate};
use super::*;

#[test]
fn second_open_is_refused_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let first = Store::open(&path).unwrap();
    let err = Store::open(&path).err().expect("second open must fail");
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use by another"));
    drop(first);
    Store::open(&path).expect("lock released with the first store");
}

#[cfg(unix)]
#[test]
fn state_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let _s = Store::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// Regression (issue 11, finding 7): an existing state file at 0644 stayed so, and a
/// permission error did not name the file.
#[cfg(unix)]
#[test]
fn an_existing_open_state_file_is_tightened_and_errors_name_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&path).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A folder the process may not write into (skipped as root, who may).
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let inside = locked.join("state.db");
    if std::fs::File::create(locked.join("probe")).is_err() {
        let err = Store::open(&inside)
            .err()
            .expect("cannot create the state there")
            .to_string();
        assert!(err.contains(&inside.display().to_string()), "{err}");
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Under a path that is not a folder (fails for root too).
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "x").unwrap();
    let under = plain.join("state.db");
    let err = Store::open(&under).err().expect("not a folder").to_string();
    assert!(
        err.contains(&under.display().to_string()) || err.contains(&plain.display().to_string()),
        "{err}"
    );
}

#[test]
fn cursor_never_moves_backwards_and_prunes_seen() {
    let s = Store::in_memory().unwrap();
    s.commit_page("ld", Some(100.0), &[("a".into(), 100.0)], 10.0, 1.0)
        .unwrap();
    s.commit_page("ld", Some(50.0), &[("b".into(), 50.0)], 10.0, 2.0)
        .unwrap();
    assert_eq!(s.cursor("ld").unwrap(), Some(100.0));
    assert_eq!(s.seen("ld", "a").unwrap(), Some(100.0));
    assert_eq!(s.seen("ld", "b").unwrap(), None, "older than the overlap window");
}

/// Regression (issue 10): a recovery without a reference was keyed by its webhook's
/// `recovery_date` and by the poll's `created`, and became two LMS records. Migration V5 moves
/// existing rows to the new identity, and a webhook row stored before it is claimed by the
/// poll that finds its payment, instead of a second record.
#[test]
fn v5_moves_recoveries_to_one_identity_and_the_poll_claims_legacy_webhook_rows() {
    let mut conn = Connection::open_in_memory().unwrap();
    embedded::migrations::runner()
        .set_grouped(true)
        .set_target(refinery::Target::Version(4))
        .run(&mut conn)
        .unwrap();
    let insert = |key: &str, origin: &str, source: &str, amount: &str, state: &str| {
        conn.execute(
            "INSERT INTO ledger (direction, source_key, loan_id, amount, reference, state, origin, source,
                                 event_at, created_at, updated_at)
             VALUES ('crego', ?1, 'L1', ?2, 'CG-' || ?1, ?3, ?4, ?5, 1, 1, 1)",
            params![key, amount, state, origin, source],
        )
        .unwrap();
    };
    // Found by the poll (payment 41), and one only a webhook told of (₹777, sent already).
    insert(
        "B:L1:500:2026-11-02T10:00:00",
        "credgenics_poll",
        r#"{"payment_id": 41, "amount_recovered": 500, "payment_reference_number": "", "created": "2026-11-02 10:00:00"}"#,
        "500",
        "done",
    );
    // The same payment 41 again under another old key (its amount corrected at Credgenics):
    // the migration must not trip on the unique key.
    insert(
        "B:L1:501:2026-11-02T10:00:00",
        "credgenics_poll",
        r#"{"payment_id": 41, "amount_recovered": 501, "payment_reference_number": "", "created": "2026-11-02 10:00:00"}"#,
        "501",
        "done",
    );
    insert(
        "B:L1:777:2026-11-03T09:00:00",
        "credgenics_webhook",
        r#"{"loan_id": "L1", "amount_recovered": 777, "reference_number": "", "recovery_date": "2026-11-03 09:00:00"}"#,
        "777",
        "done",
    );
    insert(
        "B:L1:REF-9",
        "credgenics_webhook",
        r#"{"loan_id": "L1", "amount_recovered": 10, "reference_number": "REF-9"}"#,
        "10",
        "done",
    );
    migrate(&mut conn).unwrap();
    let store = Store::wrap(conn, PathBuf::from(":memory:"), None);
    assert!(
        store.ledger_by_key("B:L1:pid:41").unwrap().is_some(),
        "poll row keyed by payment_id"
    );
    assert!(
        store.ledger_by_key("B:L1:REF-9").unwrap().is_some(),
        "reference keys unchanged"
    );
    // The poll now finds the ₹777 payment (payment 42, no reference): it is that webhook row.
    let row = NewLedgerRow {
        direction: Direction::ToCrego,
        source_key: "B:L1:pid:42".into(),
        loan_id: "L1".into(),
        amount: Decimal::from(777),
        reference: "CG-new".into(),
        allocation_month: None,
        payload: None,
        origin: "credgenics_poll",
        source: serde_json::json!({"payment_id": 42}),
        event_at: 2.0,
        dead_reason: None,
    };
    assert_eq!(store.record_poll(&[row], &[], 3.0).unwrap(), 0, "no second row");
    let claimed = store.ledger_by_key("B:L1:pid:42").unwrap().unwrap();
    assert_eq!(
        claimed.state,
        LedgerState::Done,
        "the row already written, not a new one"
    );
    assert_eq!(store.ledger_for_loan(Direction::ToCrego, "L1").unwrap().len(), 4);
}

/// Regression (issue 11, finding 4): the in-flight claim checked the row's state only, and
/// resending an in-doubt row goes from `in_flight` to `in_flight`, so two claimants that read the
/// row together could both send it. The claim compares the attempt count too: of two claimants
/// holding the same read, exactly one wins, whichever state the row is in.
#[test]
fn of_two_claimants_holding_the_same_read_exactly_one_wins() {
    let store = Store::in_memory().unwrap();
    let row = NewLedgerRow {
        direction: Direction::ToCrego,
        source_key: "B:L1:REF-1".into(),
        loan_id: "L1".into(),
        amount: Decimal::from(500),
        reference: "REF-1".into(),
        allocation_month: None,
        payload: Some(serde_json::json!({"amount": 500})),
        origin: "credgenics_poll",
        source: serde_json::json!({"payment_reference": "REF-1"}),
        event_at: 1.0,
        dead_reason: None,
    };
    assert_eq!(store.record_poll(&[row], &[], 1.0).unwrap(), 1);
    let payload = serde_json::json!({"amount": 500});
    let sending = Sending {
        payload: &payload,
        reference: "REF-1",
        allocation_month: None,
        amount: Decimal::from(500),
    };
    // Pending: both read attempts = 0; the first claims, the second is refused.
    let read = store.ledger_by_key("B:L1:REF-1").unwrap().unwrap();
    assert!(
        store
            .ledger_in_flight(read.id, read.state, read.attempts, &sending, 2.0)
            .unwrap()
    );
    assert!(
        !store
            .ledger_in_flight(read.id, read.state, read.attempts, &sending, 2.0)
            .unwrap()
    );
    // In doubt (in flight, attempts = 1): a resend goes in_flight → in_flight; again only one of
    // two claimants holding that read wins.
    let read = store.ledger_by_key("B:L1:REF-1").unwrap().unwrap();
    assert_eq!((read.state, read.attempts), (LedgerState::InFlight, 1));
    assert!(
        store
            .ledger_in_flight(read.id, read.state, read.attempts, &sending, 3.0)
            .unwrap()
    );
    assert!(
        !store
            .ledger_in_flight(read.id, read.state, read.attempts, &sending, 3.0)
            .unwrap()
    );
}

/// Flow A's moves are targeted: a row it read before another writer changed the line's numbers,
/// the poll mark or the look-up count cannot undo those changes when it records its own move.
#[test]
fn flow_a_moves_leave_what_others_wrote_meanwhile() {
    let store = Store::in_memory().unwrap();
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let mut row = LoanRow {
        loan_id: "CL1".into(),
        borrower_program_id: "bp".into(),
        lead_id: "lead".into(),
        program_id: None,
        allocation_month: None,
        state: LoanState::Uploading,
        payload: None,
        payload_hash: None,
        pending: Some(PendingUpload {
            payload: serde_json::json!({"loan_id": "CL1"}),
            month: "2026-11-01".into(),
        }),
        rejected_hash: None,
        last_error: None,
        first_placed_at: Some(1.0),
        updated_at: 1.0,
        due_amount: Some(d("100")),
        total_outstanding: Some(d("100")),
        last_polled_at: None,
        line_updated_at: Some(1.0),
        line_read_at: Some(1.0),
    };
    store.save_loan(&row, false).unwrap();
    // Meanwhile: flow C reads a newer line, the poll marks the loan, a look-up fails.
    let newer = LineRead {
        due_amount: d("40"),
        total_outstanding: d("40"),
        updated_at: 5.0,
        read_at: 5.0,
    };
    store.set_line_numbers("CL1", &newer).unwrap();
    store.record_poll(&[], &["CL1".to_string()], 6.0).unwrap();
    assert!(!store.lookup_failed("CL1", 10, "timeout", 7.0).unwrap());

    // The upload is confirmed from the row read before all that.
    row.state = LoanState::Placed;
    let pending = row.pending.take().unwrap();
    row.payload = Some(pending.payload);
    row.allocation_month = Some(pending.month);
    row.payload_hash = Some("h1".into());
    row.last_polled_at = Some(2.0);
    row.updated_at = 8.0;
    store.confirm_uploads(&[&row]).unwrap();
    let got = store.loan("CL1").unwrap().unwrap();
    assert_eq!(got.state, LoanState::Placed);
    assert_eq!(got.pending, None);
    assert_eq!(got.allocation_month.as_deref(), Some("2026-11-01"));
    assert_eq!(got.payload_hash.as_deref(), Some("h1"));
    assert_eq!((got.due_amount, got.line_updated_at), (Some(d("40")), Some(5.0)));
    assert_eq!(got.last_polled_at, Some(6.0), "the poll's mark stays");
    assert_eq!(store.allocations("CL1").unwrap(), vec!["2026-11-01".to_string()]);

    // Settled from the same stale row: only the state moves.
    row.state = LoanState::Cured;
    row.updated_at = 9.0;
    store.move_loan(&row, false).unwrap();
    let got = store.loan("CL1").unwrap().unwrap();
    assert_eq!(got.state, LoanState::Cured);
    assert_eq!((got.due_amount, got.last_polled_at), (Some(d("40")), Some(6.0)));

    // Refused: the refusal and reason recorded, the payload Credgenics holds kept.
    row.state = LoanState::Rejected;
    row.rejected_hash = Some("h2".into());
    row.last_error = Some("400: Invalid Mobile numbers".into());
    store.reject_loan(&row).unwrap();
    let got = store.loan("CL1").unwrap().unwrap();
    assert_eq!(got.state, LoanState::Rejected);
    assert_eq!(got.rejected_hash.as_deref(), Some("h2"));
    assert_eq!(got.payload_hash.as_deref(), Some("h1"));
    assert_eq!(store.rejected_loans().unwrap().len(), 1);
}

/// Regression: with a second (read-only) connection closed after the writer, a clean exit left
/// committed state in `<file>-wal` — the read-only connection, last to close, cannot checkpoint.
/// An open of the same file under another name (a hard link) then saw an empty state, and the
/// hardening test's hard-link round placed every loan again. The writer now closes last.
#[test]
fn a_clean_close_leaves_everything_in_the_file_and_no_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = Store::open(&path).unwrap();
        store
            .commit_page("line_details", Some(42.0), &[("x".into(), 42.0)], 30.0, 43.0)
            .unwrap();
        assert_eq!(
            store.cursor("line_details").unwrap(),
            Some(42.0),
            "read back on the reader"
        );
    }
    let wal = dir.path().join("state.db-wal");
    assert!(!wal.exists(), "the WAL is checkpointed and removed at close");
    let link = dir.path().join("by-another-name.db");
    std::fs::hard_link(&path, &link).unwrap();
    let store = Store::open(&link).unwrap();
    assert_eq!(store.cursor("line_details").unwrap(), Some(42.0));
}

/// A rollback to an older binary (issue 15): a state file a newer version migrated is refused
/// before anything runs, naming both versions, and is left as it was.
#[test]
fn a_state_file_of_a_newer_schema_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (99, 'future', 'x', '0')",
        [],
    )
    .unwrap();
    drop(conn);
    let err = Store::open(&path).err().expect("refused").to_string();
    assert!(err.contains("schema version 99"), "{err}");
    let known = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert!(
        err.contains(&format!("newer than this binary knows ({known})")),
        "{err}"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM refinery_schema_history", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, known + 1, "nothing was run or removed");
}
