//! Property (credit-line mode, issue 16): whatever the order in which the partners act and the
//! daemon's jobs run — LMS repayments naming some drawdowns or none, part and whole, sharing a
//! date; agent collections; a month change; jobs side by side and killed at any request — once
//! the daemon has caught up, per customer: the money is equal on both sides to the paisa, every
//! LMS repayment reached Credgenics as shares summing exactly to it, no payment exists twice,
//! each agent collection is one LMS record, a transaction is `Closed` at most once a month and
//! only when its drawdown is paid off — and on the line no agent touches, exactly when it is.
//!
//! Each case is a realistic sandbox and the daemon's jobs in-process. 32 cases by default;
//! `PROPTEST_CASES=500` for a longer run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use common::{ClLine, credit_line_harness};
use crego_credgenics_sync::clock::Clock;
use crego_credgenics_sync::flows::{Context, Poll, jobs};
use crego_credgenics_sync::sandbox::Realism;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
enum Job {
    Place,
    Push,
    Poll,
    PlaceAndPush,
}

#[derive(Debug, Clone)]
enum Op {
    /// A repayment on `line` naming the drawdowns in `mask` (none: oldest overdue first), of this
    /// percentage of what they still owe (100: all of it).
    Repay {
        line: usize,
        mask: u8,
        pct: u8,
    },
    /// An agent collects this percentage of a transaction's due.
    Collect {
        drawdown: usize,
        pct: u8,
    },
    Run {
        job: Job,
        kill_after: Option<u8>,
    },
    MonthChange,
    Pause {
        ms: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let repay = (0usize..2, any::<u8>(), prop_oneof![5u8..70, Just(100u8)]).prop_map(|(line, mask, pct)| Op::Repay {
        line,
        mask,
        pct,
    });
    let collect = (0usize..2, 5u8..40).prop_map(|(drawdown, pct)| Op::Collect { drawdown, pct });
    let job = prop_oneof![
        Just(Job::Place),
        Just(Job::Push),
        Just(Job::Poll),
        Just(Job::PlaceAndPush)
    ];
    let run = (job, prop::option::weighted(0.3, 1u8..8)).prop_map(|(job, kill_after)| Op::Run { job, kill_after });
    prop_oneof![
        4 => repay,
        2 => collect,
        6 => run,
        1 => Just(Op::MonthChange),
        1 => (0u8..80).prop_map(|ms| Op::Pause { ms }),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn credit_line_money_and_status_converge_whatever_the_interleaving(
        ops in prop::collection::vec(op(), 1..16),
        seed in any::<u64>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(case(ops, seed));
    }
}

struct World {
    h: common::Harness,
    ctx: Arc<Context>,
    /// Line 0: two overdue drawdowns, agents collect there; line 1: one, repaid in the LMS only.
    lines: Vec<ClLine>,
    /// What each drawdown will owe once every booked move is made, per line, oldest first.
    due: Vec<Vec<Decimal>>,
    collections: usize,
    next_ref: u32,
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(&v.to_string()).unwrap()
}

fn next_month() -> jiff::Timestamp {
    let tz = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let today = jiff::Zoned::now().with_time_zone(tz.clone()).date();
    let first = today.first_of_month().checked_add(jiff::ToSpan::months(1)).unwrap();
    first
        .checked_add(jiff::ToSpan::days(1))
        .unwrap()
        .at(10, 0, 0, 0)
        .to_zoned(tz)
        .unwrap()
        .timestamp()
}

async fn case(ops: Vec<Op>, seed: u64) {
    // Of the shared book: line 2 (two overdue drawdowns of three) and line 0 (one).
    let (mut h, book) = credit_line_harness(
        4,
        Some(Realism {
            line_lag: Duration::from_millis(30),
            shared_date_within_secs: 1.0,
            touch_pct: 30,
            seed,
            ..Realism::default()
        }),
    )
    .await;
    h.edit("page_size", "2");
    h.edit_append("[sync]\nline_wait_secs = 600\nretry_base_secs = 0\n");
    let ctx = Arc::new(h.context());
    let mut book = book;
    let l0 = book.remove(2);
    let l1 = book.remove(0);
    let lines = vec![l0, l1];
    let due = lines
        .iter()
        .map(|l| {
            l.drawdowns
                .iter()
                .filter(|d| d.2)
                .map(|d| dec(&h.sb.drawdown(&l.account, &d.1).unwrap()["due_amount"]))
                .collect()
        })
        .collect();
    let mut w = World {
        ctx,
        lines,
        due,
        collections: 0,
        next_ref: 0,
        h,
    };
    assert_eq!(w.due[0].len(), 2, "line 0 has two overdue drawdowns");
    assert_eq!(w.due[1].len(), 1, "line 1 has one");
    jobs::place_loans(&w.ctx, None, &mut Default::default()).await.unwrap();
    for op in ops {
        step(&mut w, op).await;
    }
    converge(&w).await;
    check(&w);
}

/// The overdue drawdowns of a line: (drawdown id, transaction id), oldest first.
fn overdue(l: &ClLine) -> Vec<(String, String)> {
    l.drawdowns
        .iter()
        .filter(|d| d.2)
        .map(|d| (d.0.clone(), d.1.clone()))
        .collect()
}

/// Applies `amount` to the line's dues as the LMS does: the drawdowns in `which`, oldest first,
/// each up to what it owes.
fn apply(due: &mut [Decimal], which: &[usize], mut amount: Decimal) {
    for &i in which {
        let take = amount.min(due[i]);
        due[i] -= take;
        amount -= take;
    }
}

async fn step(w: &mut World, op: Op) {
    match op {
        Op::Repay { line, mask, pct } => {
            let dds = overdue(&w.lines[line]);
            let named: Vec<usize> = (0..dds.len()).filter(|i| mask & (1 << i) != 0).collect();
            let which: Vec<usize> = if named.is_empty() {
                (0..dds.len()).filter(|i| w.due[line][*i] > Decimal::ZERO).collect()
            } else {
                named.clone()
            };
            let owed: Decimal = which.iter().map(|i| w.due[line][*i]).sum();
            let amount = (owed * Decimal::from(pct) / Decimal::from(100)).round_dp(2);
            if amount <= Decimal::ZERO {
                return;
            }
            apply(&mut w.due[line], &which, amount);
            w.next_ref += 1;
            let ids: Vec<&str> = named.iter().map(|i| dds[*i].0.as_str()).collect();
            w.h.sb
                .line_repayment(&w.lines[line].account, amount, &format!("P-{}", w.next_ref), &ids, None);
        }
        Op::Collect { drawdown, pct } => {
            let dds = overdue(&w.lines[0]);
            let d = w.due[0][drawdown];
            let amount = (d * Decimal::from(pct) / Decimal::from(100)).round_dp(2);
            let left: Decimal = w.due[0].iter().sum::<Decimal>() - amount;
            // An agent never collects the last rupee of the line here.
            if amount <= Decimal::ZERO || left < Decimal::ONE {
                return;
            }
            w.next_ref += 1;
            if w.h
                .sb
                .cl_agent_collection(
                    &w.lines[0].customer,
                    &dds[drawdown].1,
                    amount,
                    &format!("AG-{}", w.next_ref),
                )
                .is_none()
            {
                return;
            }
            w.collections += 1;
            // The record flow B writes names no drawdown: the LMS applies it oldest overdue first.
            let which: Vec<usize> = (0..2).collect();
            apply(&mut w.due[0], &which, amount);
        }
        Op::Run { job, kill_after } => run(w, job, kill_after).await,
        Op::MonthChange => {
            let config = w.h.config();
            let clock = Clock::starting_at(next_month(), config.sync.timezone.clone());
            w.ctx = Arc::new(Context::new(config, w.h.live_store(), clock).unwrap());
        }
        Op::Pause { ms } => tokio::time::sleep(Duration::from_millis(u64::from(ms))).await,
    }
}

fn served(w: &World) -> u64 {
    w.h.sb.state().stats.values().map(|s| s.requests).sum()
}

async fn run(w: &World, job: Job, kill_after: Option<u8>) {
    let ctx = w.ctx.clone();
    let work = async move {
        let ctx = &*ctx;
        let a = async {
            jobs::place_loans(ctx, None, &mut Default::default())
                .await
                .map_err(|e| e.to_string())
        };
        let c = async {
            jobs::push_repayments(ctx, None, &mut Default::default())
                .await
                .map_err(|e| e.to_string())
        };
        let r = match job {
            Job::Place => a.await,
            Job::Push => c.await,
            Job::Poll => jobs::pull_recoveries(ctx, Poll::All, &mut Default::default())
                .await
                .map_err(|e| e.to_string()),
            Job::PlaceAndPush => {
                let (x, y) = tokio::join!(a, c);
                x.and(y)
            }
        };
        r.unwrap_or_else(|e| panic!("job {job:?} failed: {e}"));
    };
    match kill_after {
        None => work.await,
        Some(n) => {
            let until = served(w) + u64::from(n);
            tokio::select! {
                _ = work => {}
                _ = async { while served(w) < until { tokio::time::sleep(Duration::from_millis(1)).await } } => {}
            }
        }
    }
}

async fn converge(w: &World) {
    for _ in 0..8 {
        w.h.sb.settle_lms();
        for job in [Job::Place, Job::Push, Job::Poll, Job::Push] {
            run(w, job, None).await;
            w.h.sb.settle_lms();
        }
        let store = w.h.live_store();
        if w.h.sb.state().pending_line_moves() == 0
            && store.ledger_unresolved().unwrap() == 0
            && store.cl_unresolved().unwrap() == 0
        {
            return;
        }
    }
    let store = w.h.live_store();
    panic!(
        "no convergence: ledger {:?}, transactions unresolved {}, dead {:?}",
        store.ledger_counts().unwrap(),
        store.cl_unresolved().unwrap(),
        store.dead_letters().unwrap()
    );
}

fn check(w: &World) {
    let s = w.h.sb.state();
    let mut collected_records = 0;
    for (n, l) in w.lines.iter().enumerate() {
        let c = &s.credit_line.customers[&l.customer];
        let lms: Vec<&Value> = s
            .records
            .values()
            .filter(|r| r["account"] == l.account.as_str() && r["type"] == "repayment")
            .collect();
        let at_cg: Decimal = c.payment_history.iter().map(|p| dec(&p["amount_recovered"])).sum();
        let in_lms: Decimal = lms.iter().map(|r| dec(&r["amount"])).sum();
        assert_eq!(
            at_cg, in_lms,
            "money of {}: Credgenics {at_cg}, LMS {in_lms}",
            l.customer
        );
        // Each LMS repayment reached Credgenics as shares summing exactly to it, each share once.
        let pushed: Vec<&Value> = c.payment_history.iter().filter(|p| p["author"] == "api").collect();
        let refs: BTreeSet<&str> = pushed
            .iter()
            .map(|p| p["payment_reference_number"].as_str().unwrap())
            .collect();
        assert_eq!(refs.len(), pushed.len(), "a share pushed twice on {}", l.customer);
        let mut by_record: BTreeMap<&str, Decimal> = BTreeMap::new();
        for p in &pushed {
            let utr = p["payment_reference_number"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            *by_record.entry(utr).or_default() += dec(&p["amount_recovered"]);
        }
        let repaid: BTreeMap<&str, Decimal> = lms
            .iter()
            .filter(|r| r["utr"].as_str().unwrap().starts_with("P-"))
            .map(|r| (r["utr"].as_str().unwrap(), dec(&r["amount"])))
            .collect();
        assert_eq!(by_record, repaid, "shares per repayment of {}", l.customer);
        collected_records += lms.len() - repaid.len();
        // Closed: at most once per transaction and month, only on a paid-off drawdown; on the
        // line no agent touches, exactly when it is paid off.
        for (_, tid) in overdue(l) {
            let on_t: Vec<&&Value> = pushed
                .iter()
                .filter(|p| {
                    p["payment_reference_number"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("/{tid}"))
                })
                .collect();
            let mut closed_months = BTreeMap::new();
            for p in on_t.iter().filter(|p| p["final_status"] == "Closed") {
                *closed_months
                    .entry(p["allocation_month"].as_str().unwrap())
                    .or_insert(0) += 1;
            }
            assert!(closed_months.values().all(|n| *n == 1), "{tid}: {closed_months:?}");
            let paid_off = dec(&s.drawdowns[&l.account]
                .iter()
                .find(|d| d["ref_id"] == tid.as_str())
                .unwrap()["due_amount"])
            .is_zero();
            if !closed_months.is_empty() {
                assert!(paid_off, "{tid} Closed but still owes");
            }
            if n == 1 && !on_t.is_empty() {
                assert_eq!(!closed_months.is_empty(), paid_off, "{tid}: Closed iff paid off");
            }
            let t = &c.transactions[&tid];
            assert!(
                t.uploads_per_month.values().all(|n| *n == 1),
                "{tid}: {:?}",
                t.uploads_per_month
            );
        }
    }
    assert_eq!(collected_records, w.collections, "each agent collection one LMS record");
}
