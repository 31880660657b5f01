//! The daemon process is killed with SIGKILL at several points of runs over a few thousand leads
//! with payments both ways, restarted, and in the end every payment is on the other side exactly
//! once: no duplicate, nothing missing, money totals exact.

mod common;

use std::collections::BTreeMap;
use std::str::FromStr;

use common::{Harness, crash_then_finish, overdue_loan_ids};
use rust_decimal::Decimal;

fn dec(v: &serde_json::Value) -> Decimal {
    Decimal::from_str(&v.to_string()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_several_points_loses_nothing_and_duplicates_nothing() {
    let mut h = Harness::new(2500, 30).await;
    // Poll every loan on every run (the slot is always a second ago), so the poll is exercised
    // on each restart too.
    h.edit_append("[sync.schedules]\npoll_recoveries = \"* * * * * *\"\n");
    h.edit("max_in_flight", "4");
    let config = h.write_config();

    // Phase 1: placement, killed mid-way several times.
    let (killed, code) = crash_then_finish(&config, &[150, 400, 700, 1100]).await;
    assert_eq!(code, 0);
    assert!(killed >= 3, "the kills must land inside runs ({killed} did)");
    let placed = overdue_loan_ids(&h.sb);
    {
        let s = h.sb.state();
        assert_eq!(s.cg_loans.len(), placed.len(), "every overdue loan placed");
        for (id, loan) in &s.cg_loans {
            assert!(
                loan.uploads_per_month.values().all(|n| *n == 1),
                "loan {id} uploaded twice for a month"
            );
        }
    }

    // Phase 2: LMS repayments and agent collections on many loans, then killed runs again.
    let store = h.store();
    let mut repaid: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut collected: BTreeMap<String, Decimal> = BTreeMap::new();
    for (i, loan_id) in placed.iter().enumerate() {
        let bp = store.loan(loan_id).unwrap().unwrap().borrower_program_id;
        if i % 2 == 0 {
            let amount = Decimal::new(10_000 + i as i64 * 7, 2);
            h.sb.repayment(&bp, amount, &format!("LMS-{i}"));
            *repaid.entry(loan_id.clone()).or_default() += amount;
        }
        if i % 3 == 0 {
            let amount = Decimal::new(5_000 + i as i64 * 3, 2);
            let reference = if i % 9 == 0 { String::new() } else { format!("AGT-{i}") };
            h.sb.silent_agent_collection(loan_id, amount, &reference).unwrap();
            *collected.entry(loan_id.clone()).or_default() += amount;
        }
    }
    drop(store);
    let (killed, code) = crash_then_finish(&config, &[100, 300, 500, 800, 1200, 1700]).await;
    assert_eq!(code, 0);
    assert!(killed >= 4, "the kills must land inside runs ({killed} did)");

    let s = h.sb.state();
    // Credgenics: per loan, the payments pushed are exactly the LMS repayments (plus the agent
    // collections that were there already) — each reference once, money exact.
    for loan_id in &placed {
        let history = &s.cg_loans[loan_id].payment_history;
        let pushed: Vec<&serde_json::Value> = history
            .iter()
            .filter(|p| p["payment_reference_number"].as_str().unwrap_or("").starts_with("LMS-"))
            .collect();
        let mut refs: Vec<&str> = pushed
            .iter()
            .map(|p| p["payment_reference_number"].as_str().unwrap())
            .collect();
        refs.sort();
        refs.dedup();
        assert_eq!(refs.len(), pushed.len(), "duplicate payment entry on {loan_id}");
        let sum: Decimal = pushed.iter().map(|p| dec(&p["amount_recovered"])).sum();
        assert_eq!(
            sum,
            repaid.get(loan_id).copied().unwrap_or_default(),
            "money pushed for {loan_id}"
        );
        let agent = history.iter().filter(|p| p["author"] != "api").count();
        assert_eq!(
            agent,
            usize::from(collected.contains_key(loan_id)),
            "no echo entries on {loan_id}"
        );
    }
    // Crego: one record per agent collection, none for the pushed payments (no echo), money exact.
    let mut by_loan: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut utrs = std::collections::BTreeSet::new();
    let account_to_loan: BTreeMap<String, String> = {
        let store = h.store();
        placed
            .iter()
            .map(|id| (store.loan(id).unwrap().unwrap().borrower_program_id, id.clone()))
            .collect()
    };
    for r in s.records.values() {
        let utr = r["utr"].as_str().unwrap();
        if utr.starts_with("LMS-") {
            continue;
        }
        assert!(utrs.insert(utr.to_string()), "duplicate record utr {utr}");
        let loan = &account_to_loan[r["account"].as_str().unwrap()];
        *by_loan.entry(loan.clone()).or_default() += dec(&r["amount"]);
    }
    assert_eq!(by_loan, collected, "every agent collection in the LMS exactly once");
    assert_eq!(utrs.len(), collected.len());
}
