//! Dead letters as an operator audits them (issue 15): when each was created and last tried and
//! how often, reasons as JSON in `--json`, who set one aside, when and why (`list --ignored`),
//! and `preview --loan` by the loan id logs and Credgenics use.

mod common;

use common::ExitCode;
use common::{Harness, binary, overdue_lines};
use crego_credgenics_sync::store::Store;
use rust_decimal::Decimal;
use serde_json::Value;

fn cli(config: &std::path::Path, args: &[&str], user: &str) -> (i32, String, String) {
    let out = std::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap()])
        .args(args)
        .env("USER", user)
        .env_remove("SUDO_USER")
        .env_remove("CCSYNC_NOW")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_show_their_times_and_attempts_and_an_ignored_one_keeps_who_when_and_why() {
    let mut h = Harness::new(10, 50).await;
    let lines = overdue_lines(&h.sb);
    assert_eq!(h.once().await.exit_code(), 0);
    h.edit_append("[mapping.payment]\npayment_method = '\"Bitcoin\"'\n");
    h.sb.repayment(&lines[0].1, Decimal::from(10), "UTR-DL-1");
    assert_eq!(h.once().await.exit_code(), 1);
    h.close_store();
    let config = h.write_config();

    let (code, out, err) = cli(&config, &["dead-letters", "list", "--json"], "ops-anita");
    assert_eq!(code, 0, "{err}");
    let items: Value = serde_json::from_str(&out).unwrap();
    let letter = &items[0];
    let id = letter["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("payment:"), "{letter}");
    assert!(
        letter["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{letter}"
    );
    assert!(letter["last_attempt_at"].is_string(), "{letter}");
    assert!(letter["attempts"].is_number(), "{letter}");
    assert!(
        letter["reason"].is_object() && letter["reason"].to_string().contains("payment_method"),
        "the reason is JSON, not JSON inside a string: {letter}"
    );
    let (_, text, _) = cli(&config, &["dead-letters", "list"], "ops-anita");
    assert!(
        text.contains("attempt(s), last ") && text.contains("payment_method"),
        "{text}"
    );

    // Set aside: it leaves the list, and `--ignored` says who, when and why.
    let (code, out, err) = cli(
        &config,
        &["dead-letters", "ignore", &id, "--reason", "refunded by the bank"],
        "ops-anita",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("by ops-anita"), "{out}");
    let (_, out, _) = cli(&config, &["dead-letters", "list", "--json"], "ops-anita");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), serde_json::json!([]));
    let (_, out, _) = cli(&config, &["dead-letters", "list", "--ignored", "--json"], "ops-ravi");
    let ignored: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ignored[0]["id"], id.as_str());
    assert_eq!(ignored[0]["ignored_by"], "ops-anita");
    assert_eq!(ignored[0]["reason"], "refunded by the bank");
    assert!(ignored[0]["ignored_at"].is_string());
    let (_, text, _) = cli(&config, &["dead-letters", "list", "--ignored"], "ops-ravi");
    assert!(text.contains(&format!("{id:<16} ignored by ops-anita at ")), "{text}");

    // Sent again: no longer listed as set aside.
    let (code, _, err) = cli(&config, &["dead-letters", "retry", &id], "ops-ravi");
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = cli(&config, &["dead-letters", "list", "--ignored", "--json"], "ops-ravi");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), serde_json::json!([]));

    // One set aside before the audit existed (straight in the state, no audit row): still
    // listed, saying who and when are not known.
    h.sb.repayment(&lines[1].1, Decimal::from(20), "UTR-DL-2");
    assert_eq!(h.once().await.exit_code(), 1);
    let store = h.live_store();
    let old = store
        .dead_letters()
        .unwrap()
        .into_iter()
        .find(|r| r.reference == "UTR-DL-2")
        .expect("the second dead letter");
    assert!(store.ignore_dead(old.id, "set aside long ago", 1.0).unwrap());
    h.close_store();
    let (_, out, _) = cli(&config, &["dead-letters", "list", "--ignored", "--json"], "ops-ravi");
    let ignored: Value = serde_json::from_str(&out).unwrap();
    let entry = ignored
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == format!("payment:{}", old.id).as_str())
        .unwrap_or_else(|| panic!("{ignored}"));
    assert_eq!(entry["reason"], "set aside long ago");
    assert!(
        entry["ignored_by"].is_null() && entry["ignored_at"].is_null(),
        "{entry}"
    );
    let (_, text, _) = cli(&config, &["dead-letters", "list", "--ignored"], "ops-ravi");
    assert!(
        text.contains("ignored before this version recorded who and when"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_takes_the_credgenics_loan_id() {
    let h = Harness::new(10, 50).await;
    let lines = overdue_lines(&h.sb);
    assert_eq!(h.once().await.exit_code(), 0);
    h.close_store();
    let config = h.write_config();
    let (loan_id, bp, _) = &lines[0];
    let (code, out, err) = cli(&config, &["preview", "--loan", loan_id], "ops");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("loan {loan_id}: borrower-program {bp} of lead ")),
        "{out}"
    );
    assert!(out.contains(loan_id.as_str()), "{out}");
    let (code, _, err) = cli(&config, &["preview", "--loan", "CL-NEVER-PLACED"], "ops");
    assert_ne!(code, 0);
    assert!(err.contains("CL-NEVER-PLACED") && err.contains("--lead"), "{err}");
}

/// Regression: the operator commands open the state without migrating it (the daemon may be
/// running), so right after an upgrade — new binary, daemon not restarted yet — they meet a state
/// without this version's tables. A dry run, `dead-letters list --ignored` and `ignore` still work
/// there (no audit to read or write yet), instead of failing on a missing table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_work_on_a_state_the_new_daemon_has_not_migrated_yet() {
    let mut h = Harness::new(10, 50).await;
    let lines = overdue_lines(&h.sb);
    assert_eq!(h.once().await.exit_code(), 0);
    h.edit_append("[mapping.payment]\npayment_method = '\"Bitcoin\"'\n");
    h.sb.repayment(&lines[0].1, Decimal::from(10), "UTR-OLD-1");
    assert_eq!(h.once().await.exit_code(), 1);
    h.close_store();
    // Back to the schema before V7 (the audit), V8 (the mode) and V9 (credit lines).
    {
        let conn = rusqlite::Connection::open(&h.state).unwrap();
        conn.execute_batch(
            "DROP TABLE dead_letter_audit; DROP TABLE state_meta;
             DROP TABLE cl_allocations; DROP TABLE cl_transactions; DROP TABLE cl_customers;
             DELETE FROM refinery_schema_history WHERE version >= 7;",
        )
        .unwrap();
    }
    let config = h.write_config();
    let (code, _, err) = cli(&config, &["--dry-run"], "ops");
    assert_eq!(
        code, 1,
        "the dead letter still needs attention; the run itself works: {err}"
    );
    assert!(!err.contains("no such table"), "{err}");
    let (_, out, _) = cli(&config, &["dead-letters", "list", "--json"], "ops");
    let id = serde_json::from_str::<Value>(&out).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _, err) = cli(
        &config,
        &["dead-letters", "ignore", &id, "--reason", "old state"],
        "ops",
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&config, &["dead-letters", "list", "--ignored", "--json"], "ops");
    assert_eq!(code, 0, "{err}");
    let ignored: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ignored[0]["id"], id.as_str());
    assert!(ignored[0]["ignored_by"].is_null());
    // The daemon's next start migrates it, and everything is as on a fresh state.
    drop(Store::open(&h.state).unwrap());
    let (_, out, _) = cli(&config, &["dead-letters", "list", "--ignored", "--json"], "ops");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()[0]["id"], id.as_str());
}
