//! Reconcile (issue 14) against the sandbox: a book the flows kept has no finding; each kind of
//! disagreement, planted, is reported with its kind, both sides' figures and its action; `--fix`
//! mends the mendable ones exactly once (a second `--fix` writes nothing) and leaves the rest
//! reported; the command's exit codes and outputs; a run stopped between loans resumes.

mod common;
use common::ExitCode;

use std::str::FromStr;
use std::sync::Arc;

use common::{Harness, binary, overdue_lines, writes};
use crego_credgenics_sync::clock::Clock;
use crego_credgenics_sync::flows::Context;
use crego_credgenics_sync::flows::reconcile::{self, Options, Report, Scope};
use crego_credgenics_sync::store::{Finding, FindingKind};
use rust_decimal::Decimal;
use serde_json::json;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

async fn reconcile_at(h: &Harness, clock: Clock, fix: bool) -> Report {
    let ctx = Context::new(h.config(), h.live_store(), clock).unwrap();
    reconcile::run(
        &ctx,
        &Options {
            scope: Scope::All,
            fix,
            share_poll_reads: false,
        },
    )
    .await
    .unwrap()
}

async fn reconcile(h: &Harness, fix: bool) -> Report {
    let clock = Clock::system(h.config().sync.timezone.clone());
    reconcile_at(h, clock, fix).await
}

fn open_of(report: &Report) -> Vec<&Finding> {
    report.open().collect()
}

fn only(report: &Report, loan: &str) -> Vec<FindingKind> {
    report.open().filter(|f| f.loan_id == loan).map(|f| f.kind).collect()
}

/// The flows' own book — repayments (one paying a loan off), agent collections by webhook and
/// by poll only — has no finding: the same oracle the money property uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_the_flows_kept_has_no_finding() {
    let h = Harness::new(12, 60).await;
    h.listen().await;
    assert_eq!(h.once().await.exit_code(), 0);
    let lines = overdue_lines(&h.sb);
    h.sb.repayment(&lines[0].1, dec("100.25"), "UTR-CLEAN-1");
    h.sb.repayment(&lines[1].1, lines[1].2, "UTR-CLEAN-PAYOFF");
    h.sb.agent_collection(&lines[2].0, dec("50"), "AGENT-CLEAN-1")
        .await
        .unwrap();
    h.sb.silent_agent_collection(&lines[3].0, dec("75.50"), "AGENT-CLEAN-2")
        .unwrap();
    assert_eq!(h.once_polling_all().await.exit_code(), 0);
    assert_eq!(h.once().await.exit_code(), 0);

    let report = reconcile(&h, false).await;
    assert!(report.complete(), "{report:?}");
    assert!(open_of(&report).is_empty(), "{:#?}", open_of(&report));
    assert_eq!(report.run.loans_checked as usize, lines.len());
    assert_eq!(report.run.agreeing, report.run.loans_checked);
    assert_eq!(report.run.lms_total, report.run.credgenics_total);
    assert_eq!(
        report.run.lms_total,
        dec("100.25") + lines[1].2 + dec("50") + dec("75.50")
    );
}

/// Each kind of disagreement, planted on its own loan, is found with the right kind, figures
/// and action; `--fix` mends the mendable ones once and a second `--fix` writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_planted_disagreement_is_found_and_the_mendable_ones_mended_once() {
    let h = Harness::new(20, 60).await;
    assert_eq!(h.once().await.exit_code(), 0);
    let lines = overdue_lines(&h.sb);
    assert!(lines.len() >= 8);
    let loan = |i: usize| lines[i].0.clone();
    // Pushed, then each tampered with at Credgenics.
    h.sb.repayment(&lines[0].1, dec("100"), "UTR-GONE");
    h.sb.repayment(&lines[2].1, dec("200"), "UTR-PAISA");
    h.sb.repayment(&lines[3].1, dec("300"), "UTR-TWICE");
    h.sb.repayment(&lines[4].1, lines[4].2, "UTR-PAYOFF");
    h.sb.repayment(&lines[7].1, dec("70"), "UTR-REVERTED");
    assert_eq!(h.once().await.exit_code(), 0);
    {
        let mut s = h.sb.state();
        // (a) a payment deleted at Credgenics;
        s.cg_loans.get_mut(&loan(0)).unwrap().payment_history.clear();
        // (c) an amount off by one paisa;
        let p = &mut s.cg_loans.get_mut(&loan(2)).unwrap().payment_history[0];
        p["amount_recovered"] = json!(200.01);
        // (d) the same payment written a second time by someone else;
        let history = &mut s.cg_loans.get_mut(&loan(3)).unwrap().payment_history;
        let mut copy = history[0].clone();
        copy["payment_id"] = json!(9999);
        history.push(copy);
        // (e) a paid-off loan's payment not Closed;
        s.cg_loans.get_mut(&loan(4)).unwrap().payment_history[0]["final_status"] = json!("Partially Recovered");
        // (h) an LMS repayment reverted after it was pushed: its payment has no source now;
        let reverted = s.records.values_mut().find(|r| r["utr"] == "UTR-REVERTED").unwrap();
        reverted["status"] = json!("reverted");
        // (f) a loan waived in the LMS, no repayment, still open at Credgenics.
        s.update_line(&lines[5].1, |l| {
            l["due_amount"] = json!(0);
            l["total_outstanding"] = json!(0);
        });
    }
    // (a2) a repayment not pushed yet; (b) an agent collection no webhook announced.
    h.sb.repayment(&lines[6].1, dec("60"), "UTR-NEW");
    h.sb.silent_agent_collection(&loan(1), dec("40"), "AGENT-SILENT")
        .unwrap();

    let report = reconcile(&h, false).await;
    assert!(report.complete(), "{report:?}");
    let find = |i: usize, kind: FindingKind| {
        report
            .open()
            .find(|f| f.loan_id == loan(i) && f.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} on loan {i}: {:#?}", open_of(&report)))
            .clone()
    };
    let a = find(0, FindingKind::PaymentMissingAtCredgenics);
    assert_eq!(
        (a.lms, a.credgenics, a.reference.as_deref()),
        (Some(dec("100")), None, Some("UTR-GONE"))
    );
    assert!(a.action.contains("looks it up"), "{a:?}");
    let a2 = find(6, FindingKind::PaymentMissingAtCredgenics);
    assert_eq!(a2.lms, Some(dec("60")));
    let b = find(1, FindingKind::RecoveryMissingInLms);
    assert_eq!(
        (b.lms, b.credgenics, b.reference.as_deref()),
        (None, Some(dec("40")), Some("AGENT-SILENT"))
    );
    let c = find(2, FindingKind::AmountMismatch);
    assert_eq!((c.lms, c.credgenics), (Some(dec("200")), Some(dec("200.01"))));
    let d = find(3, FindingKind::DuplicateAtCredgenics);
    assert_eq!((d.lms, d.credgenics), (Some(dec("300")), Some(dec("600"))));
    assert!(d.action.contains("never deleted"), "{d:?}");
    let e = find(4, FindingKind::NotClosed);
    assert_eq!(e.reference.as_deref(), Some("UTR-PAYOFF"));
    let f = find(5, FindingKind::CuredStillOpen);
    assert_eq!(f.lms, Some(Decimal::ZERO));
    let g = find(7, FindingKind::PaymentWithoutSource);
    assert_eq!((g.lms, g.credgenics), (None, Some(dec("70"))));
    // Nothing else: one finding per planted loan.
    for (i, kinds) in [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1)] {
        assert_eq!(
            only(&report, &loan(i)).len(),
            kinds,
            "loan {i}: {:?}",
            only(&report, &loan(i))
        );
    }
    assert_eq!(report.open().count(), 8, "{:#?}", open_of(&report));
    assert_eq!(report.run.loans_checked - report.run.agreeing, 8);

    // --fix: (a), (a2) and (b) mended, each write once; the rest still reported.
    let before = h.sb.requests().len();
    let fixed = reconcile(&h, true).await;
    let sent = writes(&h.requests_since(before))
        .into_iter()
        .filter(|r| r.path.contains("/payments/"))
        .count();
    assert_eq!(sent, 2, "one payment for (a), one for (a2)");
    let records_written = h
        .requests_since(before)
        .iter()
        .filter(|r| r.api == "crego" && r.method == "POST")
        .count();
    assert_eq!(records_written, 1, "one record for (b)");
    let mended: Vec<FindingKind> = fixed.findings.iter().filter(|f| f.fixed).map(|f| f.kind).collect();
    assert_eq!(mended.len(), 3, "{mended:?}");
    let mut open: Vec<FindingKind> = fixed.open().map(|f| f.kind).collect();
    open.sort();
    assert_eq!(
        open,
        [
            FindingKind::AmountMismatch,
            FindingKind::DuplicateAtCredgenics,
            FindingKind::PaymentWithoutSource,
            FindingKind::NotClosed,
            FindingKind::CuredStillOpen
        ]
    );
    assert_eq!(h.sb.state().cg_loans[&loan(0)].payment_history.len(), 1);
    assert_eq!(
        h.sb.state()
            .records
            .values()
            .filter(|r| r["utr"] == "AGENT-SILENT")
            .count(),
        1
    );

    // A second --fix writes nothing.
    let before = h.sb.requests().len();
    let again = reconcile(&h, true).await;
    assert!(
        h.requests_since(before).iter().all(|r| !r.is_write()),
        "a second --fix wrote"
    );
    assert_eq!(again.open().count(), 5);
    assert!(again.findings.iter().all(|f| !f.fixed));
}

/// A new month with lines still overdue: each allocation is missing until flow A runs;
/// `--fix` uploads each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_allocation_is_found_and_uploaded_once_by_fix() {
    let h = Harness::new(6, 50).await;
    assert_eq!(h.once().await.exit_code(), 0);
    let lines = overdue_lines(&h.sb);
    let tz = h.config().sync.timezone.clone();
    let next = {
        let today = jiff::Zoned::now().with_time_zone(tz.clone()).date();
        let first = today.first_of_month().checked_add(jiff::ToSpan::months(1)).unwrap();
        first.at(10, 0, 0, 0).to_zoned(tz.clone()).unwrap().timestamp()
    };
    let report = reconcile_at(&h, Clock::starting_at(next, tz.clone()), false).await;
    let missing: Vec<&Finding> = report
        .open()
        .filter(|f| f.kind == FindingKind::AllocationMissing)
        .collect();
    assert_eq!(missing.len(), lines.len(), "{:#?}", open_of(&report));
    assert_eq!(report.open().count(), lines.len());

    let before = h.sb.requests().len();
    let fixed = reconcile_at(&h, Clock::starting_at(next, tz.clone()), true).await;
    assert_eq!(fixed.open().count(), 0, "{:#?}", open_of(&fixed));
    let uploads = writes(&h.requests_since(before))
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(uploads, lines.len(), "one new allocation each");
    let before = h.sb.requests().len();
    let again = reconcile_at(&h, Clock::starting_at(next, tz), true).await;
    assert_eq!(again.open().count(), 0);
    assert!(h.requests_since(before).iter().all(|r| !r.is_write()));
    assert!(
        h.sb.state()
            .cg_loans
            .values()
            .all(|l| l.uploads_per_month.values().all(|n| *n == 1))
    );
}

/// The command: exit 0 when the books agree, 1 with findings, shown as a table, as JSON and as
/// CSV for finance; `status` shows the last run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_exits_1_with_findings_in_json_and_csv_and_status_shows_them() {
    let h = Harness::new(6, 50).await;
    assert_eq!(h.once().await.exit_code(), 0);
    let lines = overdue_lines(&h.sb);
    h.close_store();
    let cfg = h.write_config();
    let run = |args: &[&str]| {
        std::process::Command::new(binary())
            .args(["--config", cfg.to_str().unwrap()])
            .args(args)
            .env_remove("CCSYNC_NOW")
            .output()
            .unwrap()
    };
    let out = run(&["reconcile"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("findings: none — the books agree"), "{text}");

    h.sb.silent_agent_collection(&lines[0].0, dec("12.34"), "AGENT,\"CSV\"")
        .unwrap();
    let out = run(&["reconcile"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("recovery_missing_in_lms"), "{text}");
    assert!(
        text.contains("reconcile --fix writes it"),
        "the action is shown:\n{text}"
    );
    let out = run(&["reconcile", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["open_findings"], 1);
    assert_eq!(v["findings"][0]["kind"], "recovery_missing_in_lms");
    assert_eq!(v["findings"][0]["credgenics"], "12.34");
    let out = run(&["reconcile", "--csv"]);
    assert_eq!(out.status.code(), Some(1));
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("loan_id,kind,month,reference,lms,credgenics,fixed,detail,action\n"),
        "{csv}"
    );
    assert!(csv.contains(",\"AGENT,\"\"CSV\"\"\","), "quoted: {csv}");
    // One loan; loans changed since a date to come (none).
    let out = run(&["reconcile", "--loan", &lines[1].0, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"]["loans_checked"], 1);
    let out = run(&["reconcile", "--since", "2099-01-01", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"]["loans_checked"], 0);
    let out = run(&["reconcile", "--loan", "CL-NOT-OURS"]);
    assert_eq!(out.status.code(), Some(3), "an unknown loan cannot be checked");
    let out = run(&["reconcile"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reconcile"]["findings"]["recovery_missing_in_lms"], 1, "{v}");
    assert_eq!(v["reconcile"]["loans_checked"], lines.len());
}

/// A run stopped between loans keeps what it checked and the next run resumes after it: no loan
/// is read twice, and the run's totals cover every loan once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_resumes_after_the_last_loan_it_checked() {
    let h = Harness::new(16, 100).await;
    assert_eq!(h.once().await.exit_code(), 0);
    let n = overdue_lines(&h.sb).len();
    let ctx = Arc::new(h.context());
    // Stopped once a few loans are in.
    let cancel = ctx.cancel.clone();
    let store = h.live_store();
    let watcher = tokio::spawn(async move {
        loop {
            if store
                .reconcile_history(1)
                .unwrap()
                .first()
                .is_some_and(|r| r.loans_checked >= 3)
            {
                cancel.cancel();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    });
    h.sb.set_delay(
        crego_credgenics_sync::partners::http::Api::Crego,
        std::time::Duration::from_millis(30),
    );
    let opts = Options {
        scope: Scope::All,
        fix: false,
        share_poll_reads: false,
    };
    let first = reconcile::run(&ctx, &opts).await.unwrap();
    watcher.await.unwrap();
    assert!(!first.complete());
    let done = first.run.loans_checked as usize;
    assert!((3..n).contains(&done), "{done} of {n}");
    h.sb.set_delay(
        crego_credgenics_sync::partners::http::Api::Crego,
        std::time::Duration::ZERO,
    );

    let before = h.sb.requests().len();
    let second = reconcile(&h, false).await;
    assert_eq!(second.run.id, first.run.id, "the same run, resumed");
    assert!(second.complete());
    assert_eq!(second.run.loans_checked as usize, n);
    let programs_read = h
        .requests_since(before)
        .iter()
        .filter(|r| r.path.ends_with("/programs/"))
        .count();
    assert_eq!(programs_read, n - done, "only the loans not checked yet are read");
}

/// Daemon mode: the nightly job (here every few seconds) reconciles after its full scan, the
/// findings reach `/metrics`, and the poll's full reads are shared (no second Credgenics read of
/// a loan the poll just read and nothing was written to since).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nightly_job_reconciles_and_metrics_show_the_findings() {
    let mut h = Harness::new(6, 50).await;
    assert_eq!(h.once_polling_all().await.exit_code(), 0);
    let lines = overdue_lines(&h.sb);
    // A repayment the push job (never, here) has not sent.
    h.sb.repayment(&lines[0].1, dec("9.99"), "UTR-NIGHT");
    h.edit_append(&common::schedules(
        common::NEVER,
        common::NEVER,
        common::NEVER,
        "*/2 * * * * *",
    ));
    let before = h.sb.requests().len();
    let d = h.start_daemon().await;
    let store = h.live_store();
    common::wait_for("a reconcile run", 20, || store.reconcile_last().unwrap().is_some()).await;
    let metrics = reqwest::get(d.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(d.stop().await, 0);
    let last = store.reconcile_last().unwrap().unwrap();
    assert_eq!(last.loans_checked as usize, lines.len());
    assert_eq!(last.counts.get("payment_missing_at_credgenics"), Some(&1), "{last:?}");
    assert!(
        metrics.contains("ccsync_reconcile_findings{kind=\"payment_missing_at_credgenics\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ccsync_reconcile_findings{kind=\"amount_mismatch\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("ccsync_reconcile_loans_checked {}", lines.len())),
        "{metrics}"
    );
    assert!(metrics.contains("ccsync_reconcile_last_completed_timestamp_seconds"));
    // The poll's reads were recent: no loan is read again at Credgenics but the one whose state
    // changed since (its line moved with the repayment; the full scan remembered that).
    let cg_reads: Vec<String> = h
        .requests_since(before)
        .iter()
        .filter(|r| r.api == "credgenics" && r.method == "GET")
        .map(|r| r.path.clone())
        .collect();
    assert!(
        cg_reads.iter().all(|p| p.ends_with(&lines[0].0)),
        "reconcile shared the poll's reads: {cg_reads:?}"
    );
}
