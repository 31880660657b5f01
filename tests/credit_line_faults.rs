//! Credit-line mode (issue 16) under the fault suite and the crash test: with random 5xx, 429s,
//! stalls, resets and malformed bodies on both APIs, repeated `--once` runs converge to exactly
//! the state of a fault-free run; and a daemon killed with SIGKILL at several points loses no
//! payment share and duplicates none.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use common::{ClLine, ExitCode, Harness, crash_then_finish, credit_line_harness};
use crego_credgenics_sync::partners::http::Api;
use crego_credgenics_sync::sandbox::FaultSpec;
use rust_decimal::Decimal;

fn dec(v: &serde_json::Value) -> Decimal {
    Decimal::from_str(&v.to_string()).unwrap()
}

type Sides = (
    BTreeSet<(String, String)>,
    BTreeMap<String, Vec<(String, Decimal)>>,
    BTreeSet<(String, String, Decimal)>,
);

/// Transactions placed (customer, transaction); per customer the (reference, amount) of every
/// payment in its history; every LMS record as (utr, account, amount). Panics on any duplicate.
fn sides(h: &Harness) -> Sides {
    let s = h.sb.state();
    let mut placed = BTreeSet::new();
    let mut payments = BTreeMap::new();
    for (cid, c) in &s.credit_line.customers {
        for (tid, t) in &c.transactions {
            assert!(
                t.uploads_per_month.values().all(|n| *n == 1),
                "{tid} uploaded twice for a month"
            );
            placed.insert((cid.clone(), tid.clone()));
        }
        let mut p: Vec<(String, Decimal)> = c
            .payment_history
            .iter()
            .map(|p| {
                (
                    p["payment_reference_number"].as_str().unwrap().to_string(),
                    dec(&p["amount_recovered"]),
                )
            })
            .collect();
        p.sort();
        let refs: BTreeSet<&String> = p.iter().map(|(r, _)| r).filter(|r| !r.is_empty()).collect();
        assert_eq!(
            refs.len(),
            p.iter().filter(|(r, _)| !r.is_empty()).count(),
            "duplicate payment on {cid}"
        );
        payments.insert(cid.clone(), p);
    }
    let mut utrs = BTreeSet::new();
    let records = s
        .records
        .values()
        .map(|r| {
            let utr = r["utr"].as_str().unwrap().to_string();
            assert!(utrs.insert(utr.clone()), "duplicate record {utr}");
            (utr, r["account"].as_str().unwrap().to_string(), dec(&r["amount"]))
        })
        .collect();
    (placed, payments, records)
}

/// LMS repayments (on every other line, naming two drawdowns on every fourth) and agent
/// collections (every third line, on its first overdue transaction; every ninth without a
/// reference). Returns the money per customer each way.
fn book_payments(h: &Harness, book: &[ClLine]) -> (BTreeMap<String, Decimal>, BTreeMap<String, Decimal>) {
    let (mut repaid, mut collected) = (BTreeMap::new(), BTreeMap::new());
    for (i, l) in book.iter().enumerate() {
        let overdue: Vec<&(String, String, bool)> = l.drawdowns.iter().filter(|d| d.2).collect();
        let Some(first) = overdue.first() else { continue };
        if i % 2 == 0 {
            // Naming two drawdowns, more than the first one's dues (at most ₹5701 in this book):
            // the record is split across both.
            let (amount, named): (Decimal, Vec<&str>) = if i % 4 == 0 {
                (
                    Decimal::new(700_000 + i as i64 * 7, 2),
                    overdue.iter().take(2).map(|d| d.0.as_str()).collect(),
                )
            } else {
                (Decimal::new(150_000 + i as i64 * 7, 2), Vec::new())
            };
            h.sb.line_repayment(&l.account, amount, &format!("LMS-{i}"), &named, None);
            *repaid.entry(l.customer.clone()).or_default() += amount;
        }
        if i % 3 == 0 {
            let amount = Decimal::new(5_000 + i as i64 * 3, 2);
            let reference = if i % 9 == 0 { String::new() } else { format!("AGT-{i}") };
            h.sb.cl_agent_collection(&l.customer, &first.1, amount, &reference)
                .expect("an overdue drawdown is a placed transaction");
            *collected.entry(l.customer.clone()).or_default() += amount;
        }
    }
    (repaid, collected)
}

async fn converge(h: &Harness, poll_all: bool) -> usize {
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

async fn story(h: &Harness, book: &[ClLine]) -> usize {
    let mut runs = converge(h, false).await;
    book_payments(h, book);
    runs += converge(h, true).await;
    runs
}

async fn harness() -> (Harness, Vec<ClLine>) {
    let (mut h, book) = credit_line_harness(60, None).await;
    h.edit("timeout_secs", "1");
    h.edit_append("[sync]\nretry_base_secs = 0\n");
    (h, book)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_line_runs_under_faults_converge_to_the_fault_free_state() {
    let (clean, book) = harness().await;
    story(&clean, &book).await;
    let expected = sides(&clean);
    let overdue: usize = book.iter().map(|l| l.drawdowns.iter().filter(|d| d.2).count()).sum();
    assert_eq!(expected.0.len(), overdue, "every overdue drawdown placed");
    // The story moved money both ways, split records included.
    let refs: Vec<&String> = expected.1.values().flatten().map(|(r, _)| r).collect();
    assert!(
        refs.iter().any(|r| r.starts_with("LMS-") && r.contains('/')),
        "a record was split: {refs:?}"
    );
    assert!(refs.iter().any(|r| r.starts_with("AGT-")), "agents collected: {refs:?}");
    assert!(
        expected.2.iter().any(|(utr, ..)| utr.starts_with("AGT-")),
        "recoveries reached the LMS"
    );

    let (faulty, book) = harness().await;
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
    let runs = story(&faulty, &book).await;
    let faults = faulty.sb.requests().iter().filter(|r| r.status >= 429).count();
    assert!(faults > 20, "faults were injected ({faults})");
    eprintln!("converged in {runs} runs with {faults} injected failures");
    let got = sides(&faulty);
    assert_eq!(got.0, expected.0, "transactions placed");
    assert_eq!(got.1, expected.1, "payments at Credgenics, per customer");
    assert_eq!(got.2, expected.2, "records in the LMS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_line_sigkill_at_several_points_loses_no_share_and_duplicates_none() {
    let (mut h, book) = credit_line_harness(700, None).await;
    h.edit_append("[sync.schedules]\npoll_recoveries = \"* * * * * *\"\n");
    h.edit("max_in_flight", "4");
    let config = h.write_config();

    let (killed, code) = crash_then_finish(&config, &[150, 400, 700, 1100]).await;
    assert_eq!(code, 0);
    assert!(killed >= 3, "the kills must land inside runs ({killed} did)");
    {
        let s = h.sb.state();
        for l in &book {
            for (_, tid, overdue) in &l.drawdowns {
                let t = s
                    .credit_line
                    .customers
                    .get(&l.customer)
                    .and_then(|c| c.transactions.get(tid));
                assert_eq!(t.is_some(), *overdue, "{tid} placed iff overdue");
                if let Some(t) = t {
                    assert!(t.uploads_per_month.values().all(|n| *n == 1), "{tid} uploaded twice");
                }
            }
        }
    }

    let (repaid, collected) = book_payments(&h, &book);
    assert!(!repaid.is_empty() && !collected.is_empty(), "payments both ways");
    let (killed, code) = crash_then_finish(&config, &[100, 300, 500, 800, 1200, 1700]).await;
    assert_eq!(code, 0);
    assert!(killed >= 4, "the kills must land inside runs ({killed} did)");

    let s = h.sb.state();
    for l in &book {
        let Some(c) = s.credit_line.customers.get(&l.customer) else {
            continue;
        };
        let pushed: Vec<&serde_json::Value> = c
            .payment_history
            .iter()
            .filter(|p| p["payment_reference_number"].as_str().unwrap_or("").starts_with("LMS-"))
            .collect();
        let refs: BTreeSet<&str> = pushed
            .iter()
            .map(|p| p["payment_reference_number"].as_str().unwrap())
            .collect();
        assert_eq!(refs.len(), pushed.len(), "duplicate payment share on {}", l.customer);
        let sum: Decimal = pushed.iter().map(|p| dec(&p["amount_recovered"])).sum();
        assert_eq!(
            sum,
            repaid.get(&l.customer).copied().unwrap_or_default(),
            "money pushed for {}",
            l.customer
        );
        let agent = c.payment_history.iter().filter(|p| p["author"] != "api").count();
        assert_eq!(
            agent,
            usize::from(collected.contains_key(&l.customer)),
            "no echo on {}",
            l.customer
        );
    }
    let account_to_customer: BTreeMap<&str, &str> =
        book.iter().map(|l| (l.account.as_str(), l.customer.as_str())).collect();
    let mut by_customer: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut utrs = BTreeSet::new();
    for r in s.records.values() {
        let utr = r["utr"].as_str().unwrap();
        if utr.starts_with("LMS-") {
            continue;
        }
        assert!(utrs.insert(utr.to_string()), "duplicate record utr {utr}");
        let customer = account_to_customer[r["account"].as_str().unwrap()];
        *by_customer.entry(customer.to_string()).or_default() += dec(&r["amount"]);
    }
    assert_eq!(by_customer, collected, "every agent collection in the LMS exactly once");
}
