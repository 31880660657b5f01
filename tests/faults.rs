//! Fault injection: with random 5xx, 429s, stalls past the client timeout, connection resets and
//! malformed bodies on both APIs, repeated `--once` runs converge to exactly the state of a
//! fault-free run, with no duplicate anywhere; and a rate-limited partner sees no 429 from a
//! daemon configured at its rate.

mod common;
use common::ExitCode;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Harness, overdue_loan_ids};
use crego_credgenics_sync::partners::http::Api;
use crego_credgenics_sync::sandbox::{FaultSpec, SandboxConfig, SeedSpec};
use rust_decimal::Decimal;

type Sides = (
    BTreeSet<String>,
    BTreeMap<String, Vec<(String, String)>>,
    BTreeSet<(String, String, String)>,
);

/// Loans placed; per loan the (reference, amount) of every Credgenics payment; every LMS record
/// as (utr, account, amount).
fn sides(h: &Harness) -> Sides {
    let s = h.sb.state();
    let loans: BTreeSet<String> = s.cg_loans.keys().cloned().collect();
    let mut payments = BTreeMap::new();
    for (id, l) in &s.cg_loans {
        assert!(
            l.uploads_per_month.values().all(|n| *n == 1),
            "{id} uploaded twice for a month"
        );
        let mut p: Vec<(String, String)> = l
            .payment_history
            .iter()
            .map(|p| {
                (
                    p["payment_reference_number"].as_str().unwrap().to_string(),
                    p["amount_recovered"].to_string(),
                )
            })
            .collect();
        p.sort();
        let before = p.len();
        p.dedup_by(|a, b| a.0 == b.0);
        assert_eq!(p.len(), before, "duplicate payment on {id}");
        payments.insert(id.clone(), p);
    }
    let mut utrs = BTreeSet::new();
    let records = s
        .records
        .values()
        .map(|r| {
            let utr = r["utr"].as_str().unwrap().to_string();
            assert!(utrs.insert(utr.clone()), "duplicate record {utr}");
            (utr, r["account"].as_str().unwrap().to_string(), r["amount"].to_string())
        })
        .collect();
    (loans, payments, records)
}

/// Places the book, then books repayments and agent collections, each phase run until it
/// converges; returns how many runs it took.
async fn story(h: &Harness) -> usize {
    let mut runs = 0;
    let converge = |poll_all: bool| {
        let h = &h;
        async move {
            for n in 1..=25 {
                let r = if poll_all {
                    h.once_polling_all().await
                } else {
                    h.once().await
                };
                if r.exit_code() == 0 {
                    return n;
                }
            }
            panic!("did not converge in 25 runs");
        }
    };
    runs += converge(false).await;
    let store = h.store();
    for (i, loan_id) in overdue_loan_ids(&h.sb).iter().enumerate() {
        let bp = store.loan(loan_id).unwrap().unwrap().borrower_program_id;
        if i % 2 == 0 {
            h.sb.repayment(&bp, Decimal::new(10_000 + i as i64, 2), &format!("LMS-{i}"));
        }
        if i % 3 == 0 {
            h.sb.silent_agent_collection(loan_id, Decimal::new(5_000 + i as i64, 2), &format!("AGT-{i}"));
        }
    }
    runs += converge(true).await;
    runs
}

async fn harness() -> Harness {
    let mut h = Harness::with(SandboxConfig {
        seed: SeedSpec {
            leads: 150,
            overdue_pct: 30,
            rng_seed: 5,
            ..SeedSpec::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    h.edit("timeout_secs", "1");
    h.edit_append("[sync]\nretry_base_secs = 0\n");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_runs_under_faults_converge_to_the_fault_free_state() {
    let clean = harness().await;
    story(&clean).await;
    let expected = sides(&clean);
    assert!(!expected.1.values().all(Vec::is_empty), "the story moved payments");

    let faulty = harness().await;
    let spec = FaultSpec {
        p_500: 0.10,
        p_429: 0.05,
        p_stall: 0.02,
        p_reset: 0.01,
        p_malformed: 0.01,
        stall: Duration::from_millis(1500),
    };
    faulty.sb.set_faults(Api::Crego, spec.clone(), 7);
    faulty.sb.set_faults(Api::Credgenics, spec, 8);
    let runs = story(&faulty).await;
    let faults = faulty.sb.requests().iter().filter(|r| r.status >= 429).count();
    assert!(faults > 20, "faults were injected ({faults})");
    eprintln!("converged in {runs} runs with {faults} injected failures");
    let got = sides(&faulty);
    // Records written by flow B carry the same utr; the LMS repayments are the same.
    assert_eq!(got.0, expected.0, "loans placed");
    assert_eq!(got.1, expected.1, "payments at Credgenics");
    assert_eq!(got.2, expected.2, "records in the LMS");
    // And reconcile, reading both books as an operator's run would, agrees (issue 14).
    faulty.sb.clear_faults();
    let config = faulty.config();
    let clock = crego_credgenics_sync::clock::Clock::system(config.sync.timezone.clone());
    let ctx = crego_credgenics_sync::flows::Context::new(config, faulty.live_store(), clock).unwrap();
    let opts = crego_credgenics_sync::flows::reconcile::Options {
        scope: crego_credgenics_sync::flows::reconcile::Scope::All,
        fix: false,
        share_poll_reads: false,
    };
    let report = crego_credgenics_sync::flows::reconcile::run(&ctx, &opts).await.unwrap();
    assert!(report.complete(), "{report:?}");
    let open: Vec<_> = report.open().collect();
    assert!(open.is_empty(), "reconcile after the fault suite: {open:#?}");
    assert_eq!(report.run.loans_checked as usize, expected.0.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_limited_to_20_per_second_sees_no_429_from_a_daemon_at_20() {
    let mut h = Harness::with(SandboxConfig {
        seed: SeedSpec {
            leads: 120,
            overdue_pct: 30,
            rng_seed: 3,
            ..SeedSpec::default()
        },
        crego_rps: Some(20),
        credgenics_rps: Some(20),
        ..SandboxConfig::default()
    })
    .await;
    h.edit("requests_per_second", "20");
    let text = h
        .config_toml()
        .replacen("requests_per_second = 200", "requests_per_second = 20", 1);
    let config = std::sync::Arc::new(
        crego_credgenics_sync::config::RawConfig::from_toml_str(&text)
            .unwrap()
            .validate()
            .unwrap(),
    );
    let clock = crego_credgenics_sync::clock::Clock::system(config.sync.timezone.clone());
    let report = h.run(config, clock, Default::default()).await;
    assert_eq!(report.exit_code(), 0);
    let limited = h.sb.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 0, "the daemon stayed under the partner's ceiling");
}
