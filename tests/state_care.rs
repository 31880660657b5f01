//! The state file is what prevents double posting (issue 15): a backup taken while the daemon
//! runs holds the same ledger, retention prunes what finished work no longer needs and keeps
//! every key that stops a second send; completions and the man page come from the CLI itself.

mod common;

use std::time::Duration;

use common::ExitCode;
use common::{Harness, NEVER, binary, overdue_lines, schedules, writes};
use crego_credgenics_sync::clock::Clock;
use crego_credgenics_sync::flows::{Poll, RunOptions};
use crego_credgenics_sync::store::{Direction, Store};
use rust_decimal::Decimal;

/// A book with payments both ways: placed loans, an LMS repayment pushed, an agent collection
/// written back (through the webhook and the poll).
async fn book_with_payments(h: &Harness) {
    let lines = overdue_lines(&h.sb);
    assert_eq!(h.once().await.exit_code(), 0);
    h.sb.repayment(&lines[0].1, Decimal::from(100), "UTR-CARE-1");
    h.sb.agent_collection(&lines[1].0, Decimal::from(50), "AG-CARE-1")
        .await
        .unwrap();
    let report = h.once_polling_all().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_daemon_runs_opens_and_holds_the_same_ledger() {
    let mut h = Harness::new(16, 50).await;
    h.listen().await;
    book_with_payments(&h).await;
    // Every job busy every second while the backup is taken.
    let every = "*/1 * * * * *";
    h.edit_append(&schedules(every, every, every, NEVER));
    let config = h.write_config();
    let d = h.start_daemon().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("state-backup.db");
    let backup = || {
        std::process::Command::new(binary())
            .args(["--config", config.to_str().unwrap(), "backup", copy.to_str().unwrap()])
            .env_remove("CCSYNC_NOW")
            .output()
            .unwrap()
    };
    let out = backup();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("backup written") && said.contains("ledger rows"),
        "{said}"
    );
    // A second backup never overwrites the first.
    let again = backup();
    assert_ne!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    assert_eq!(d.stop().await, 0);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a backup holds personal data");
    }
    assert!(
        !dir.path().join("state-backup.db-wal").exists(),
        "one file, no WAL beside it"
    );
    let live = h.live_store().ledger_keys().unwrap();
    let backed_up = Store::open_read_only(&copy).unwrap().ledger_keys().unwrap();
    assert!(live.len() >= 2, "{live:?}");
    assert_eq!(backed_up, live);
    // The copy is a working state: a daemon could start on it (the lock, the migrations).
    drop(Store::open(&copy).expect("the backup opens as a state file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_payloads_of_finished_work_and_keeps_every_key_that_prevents_a_double_post() {
    let mut h = Harness::new(16, 50).await;
    h.listen().await;
    let lines = overdue_lines(&h.sb);
    book_with_payments(&h).await;
    let store = h.live_store();
    let keys = store.ledger_keys().unwrap();
    assert!(
        keys.iter().filter(|(_, state, _)| state == "done").count() >= 2,
        "{keys:?}"
    );
    assert!(store.webhook_event_count().unwrap() > 0);
    assert!(!store.last_runs(100).unwrap().is_empty());

    // Everything finished counts as old.
    let statuses = |store: &Store| -> Vec<(String, serde_json::Value)> {
        lines
            .iter()
            .flat_map(|(loan, _, _)| store.ledger_for_loan(Direction::ToCredgenics, loan).unwrap())
            .map(|r| {
                (
                    r.source_key,
                    r.payload.map(|p| p["final_status"].clone()).unwrap_or_default(),
                )
            })
            .collect()
    };
    let sent_statuses = statuses(&store);
    assert!(sent_statuses.iter().any(|(_, s)| s.is_string()), "{sent_statuses:?}");
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let pruned = store.prune(now + 60.0).unwrap();
    assert!(pruned.payloads >= 2, "{pruned:?}");
    // A delivered payment keeps its final_status (flow C reads it: a loan is not sent Closed
    // twice in a month), and nothing else of what was sent.
    assert_eq!(statuses(&store), sent_statuses);
    for (loan, _, _) in &lines {
        for r in store.ledger_for_loan(Direction::ToCredgenics, loan).unwrap() {
            let kept = r.payload.unwrap_or_default();
            assert!(kept.as_object().is_none_or(|o| o.len() == 1), "{kept}");
        }
    }
    assert_eq!(
        store.prune(now + 60.0).unwrap().payloads,
        0,
        "a second pass has nothing left"
    );
    assert!(pruned.webhook_events >= 1 && pruned.runs >= 1, "{pruned:?}");
    assert_eq!(store.ledger_keys().unwrap(), keys, "every ledger key and state is kept");
    assert_eq!(store.webhook_event_count().unwrap(), 0);

    // The whole history read again — both change streams from the start, every payment history —
    // sends nothing: the keys that stop a second send are all there.
    let before = h.sb.requests().len();
    let config = h.config();
    let clock = Clock::system(config.sync.timezone.clone());
    let report = h
        .run(
            config,
            clock,
            RunOptions {
                since: Some(0.0),
                poll: Some(Poll::All),
            },
        )
        .await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let sent = h.requests_since(before);
    assert!(
        writes(&sent).is_empty(),
        "sent again after pruning: {:?}",
        writes(&sent)
    );

    // Wired to `[state] retain_days`: a cycle two days on prunes the runs finished before.
    let state_line = format!("\"{}\"\nretain_days = 1", h.state.display());
    h.edit("path", &state_line);
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(48)).to_string();
    h.once_at(&later).await;
    let runs = store.last_runs(100).unwrap();
    assert_eq!(runs.len(), 1, "only the run that pruned is left: {runs:?}");
}

#[test]
fn completions_and_the_man_page_come_from_the_cli() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(binary()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F _crego__credgenics__sync")
            && bash.contains("reconcile")
            && bash.contains("--dry-run")
    );
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef crego-credgenics-sync"), "{}", &zsh[..80]);
    let man = run(&["man"]);
    assert!(
        man.contains(".TH crego-credgenics-sync") && man.contains("check\\-config"),
        "{}",
        &man[..200]
    );
}
