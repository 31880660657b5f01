//! Flows B and C against the sandbox: every payment delivered exactly once, no echoes, exact
//! money, dead letters; and the webhook listener's contract.

mod common;
use common::ExitCode;

use std::collections::BTreeMap;
use std::str::FromStr;

use common::{Harness, WEBHOOK_TOKEN, overdue_loan_ids, writes};
use crego_credgenics_sync::store::{Direction, LedgerState, LoanState, PendingUpload};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Placed loans: (loan id, borrower-program id, due amount).
async fn placed(h: &Harness) -> Vec<(String, String, Decimal)> {
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let store = h.store();
    overdue_loan_ids(&h.sb)
        .into_iter()
        .map(|id| {
            let l = store.loan(&id).unwrap().unwrap();
            assert_eq!(l.state, LoanState::Placed);
            (id, l.borrower_program_id, l.due_amount.unwrap())
        })
        .collect()
}

fn payments_at_credgenics(h: &Harness, loan_id: &str) -> Vec<Value> {
    h.sb.state()
        .cg_loans
        .get(loan_id)
        .map(|l| l.payment_history.clone())
        .unwrap_or_default()
}

fn records_with_utr(h: &Harness, utr: &str) -> Vec<Value> {
    h.sb.state()
        .records
        .values()
        .filter(|r| r["utr"] == utr)
        .cloned()
        .collect()
}

#[tokio::test]
async fn each_lms_repayment_reaches_credgenics_exactly_once_with_month_and_status() {
    let h = Harness::new(20, 50).await;
    let loans = placed(&h).await;
    let (full, part, split) = (&loans[0], &loans[1], &loans[2]);
    // One loan repaid in full, one in part, one in two halves that together clear it.
    h.sb.repayment(&full.1, full.2, "UTR-FULL-1");
    h.sb.repayment(&part.1, dec("100.50"), "UTR-PART-1");
    let half = (split.2 / dec("2")).round_dp(2);
    h.sb.repayment(&split.1, half, "UTR-SPLIT-1");
    h.sb.repayment(&split.1, split.2 - half, "UTR-SPLIT-2");

    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.push_repayments.queued, 4);
    assert_eq!(report.push_repayments.delivery.sent, 4);

    let month = h.store().loan(&full.0).unwrap().unwrap().allocation_month.unwrap();
    let full_p = payments_at_credgenics(&h, &full.0);
    assert_eq!(full_p.len(), 1);
    assert_eq!(full_p[0]["allocation_month"], month.as_str());
    assert_eq!(full_p[0]["final_status"], "Closed");
    assert_eq!(full_p[0]["closure_with"], "NOC");
    assert_eq!(full_p[0]["payment_reference_number"], "UTR-FULL-1");

    let part_p = payments_at_credgenics(&h, &part.0);
    assert_eq!(part_p.len(), 1);
    assert_eq!(part_p[0]["final_status"], "Partially Recovered");
    assert!(
        part_p[0].get("closure_with").is_none(),
        "closure_with only goes with Closed"
    );
    assert_eq!(part_p[0]["amount_recovered"].to_string(), "100.5");

    let split_p = payments_at_credgenics(&h, &split.0);
    let statuses: BTreeMap<&str, &str> = split_p
        .iter()
        .map(|p| {
            (
                p["payment_reference_number"].as_str().unwrap(),
                p["final_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(
        statuses["UTR-SPLIT-2"], "Closed",
        "the latest repayment of a cleared line closes it"
    );
    assert_eq!(statuses["UTR-SPLIT-1"], "Partially Recovered");

    // Money: what reached Credgenics per loan is exactly what was repaid.
    for (loan, expect) in [(&full.0, full.2), (&part.0, dec("100.50")), (&split.0, split.2)] {
        let sum: Decimal = payments_at_credgenics(&h, loan)
            .iter()
            .map(|p| Decimal::from_str(&p["amount_recovered"].to_string()).unwrap())
            .sum();
        assert_eq!(sum, expect, "loan {loan}");
    }

    // Further cycles send nothing again.
    let before = h.sb.requests().len();
    for _ in 0..2 {
        assert_eq!(h.once().await.exit_code(), 0);
    }
    assert!(
        writes(&h.requests_since(before)).is_empty(),
        "{:?}",
        writes(&h.requests_since(before))
    );
}

#[tokio::test]
async fn repayments_on_unplaced_loans_or_before_placement_do_not_travel() {
    let h = Harness::new(20, 50).await;
    // A repayment booked before the loan was ever placed is part of the claim.
    let early_bp = {
        let s = h.sb.state();
        s.overdue_programs(1)[0]["id"].as_str().unwrap().to_string()
    };
    h.sb.repayment(&early_bp, dec("10"), "UTR-EARLY");
    let not_overdue_bp = {
        let s = h.sb.state();
        let bp = s
            .programs
            .values()
            .flatten()
            .find(|p| p["line_detail"]["dpd"] == 0)
            .unwrap();
        bp["id"].as_str().unwrap().to_string()
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    h.sb.repayment(&not_overdue_bp, dec("10"), "UTR-UNPLACED");
    let report = h.once().await;
    assert_eq!(report.push_repayments.unplaced, 1);
    assert_eq!(report.push_repayments.queued, 0);
    assert!(h.sb.state().cg_loans.values().all(|l| l.payment_history.is_empty()));
}

#[tokio::test]
async fn each_agent_collection_reaches_the_lms_once_by_webhook_poll_or_both() {
    let h = Harness::new(20, 50).await;
    h.listen().await;
    let loans = placed(&h).await;
    // By webhook (and the poll sees it too), by poll only, and a webhook delivered twice.
    h.sb.agent_collection(&loans[0].0, dec("500"), "AGENT-1").await.unwrap();
    h.sb.silent_agent_collection(&loans[1].0, dec("250.25"), "AGENT-2")
        .unwrap();
    let dup = h.sb.agent_collection(&loans[2].0, dec("75"), "AGENT-3").await.unwrap();
    let hook = crego_credgenics_sync::sandbox::payment_webhook(&loans[2].0, &dup);
    let url = h.sb.state().webhook_target.clone().unwrap().0;
    let resp = reqwest::Client::new()
        .post(&url)
        .header("X-Webhook-Token", WEBHOOK_TOKEN)
        .json(&hook)
        .send()
        .await;
    assert_eq!(resp.unwrap().status(), 200);
    // A collection with no reference: keyed by amount and date, written with a CG- utr.
    h.sb.agent_collection(&loans[3].0, dec("42"), "").await.unwrap();

    let report = h.once_polling_all().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    for (i, utr) in [(0, "AGENT-1"), (1, "AGENT-2"), (2, "AGENT-3")] {
        let recs = records_with_utr(&h, utr);
        assert_eq!(recs.len(), 1, "{utr}");
        assert_eq!(recs[0]["account"], loans[i].1.as_str());
        assert_eq!(recs[0]["type"], "repayment");
    }
    assert_eq!(records_with_utr(&h, "AGENT-2")[0]["amount"].to_string(), "250.25");
    let cg: Vec<Value> =
        h.sb.state()
            .records
            .values()
            .filter(|r| r["utr"].as_str().unwrap_or("").starts_with("CG-"))
            .cloned()
            .collect();
    assert_eq!(cg.len(), 1);
    assert_eq!(cg[0]["account"], loans[3].1.as_str());

    // Poll and webhooks again: nothing new.
    let records = h.sb.state().records.len();
    assert_eq!(h.once_polling_all().await.exit_code(), 0);
    assert_eq!(h.sb.state().records.len(), records);
}

#[tokio::test]
async fn no_echo_in_either_direction_after_several_cycles() {
    let h = Harness::new(30, 50).await;
    h.listen().await;
    let loans = placed(&h).await;
    h.sb.repayment(&loans[0].1, dec("1000"), "LMS-1");
    h.sb.repayment(&loans[1].1, dec("2000"), "LMS-2");
    h.sb.agent_collection(&loans[2].0, dec("300"), "AG-1").await.unwrap();
    h.sb.agent_collection(&loans[0].0, dec("400"), "AG-2").await.unwrap();
    for _ in 0..4 {
        let report = h.once_polling_all().await;
        assert_eq!(report.exit_code(), 0, "{report:?}");
        // let the sandbox's webhooks for pushed payments arrive
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Credgenics: two pushed payments + two agent collections, nothing more.
    let all: Vec<String> =
        h.sb.state()
            .cg_loans
            .values()
            .flat_map(|l| {
                l.payment_history
                    .iter()
                    .map(|p| p["payment_reference_number"].as_str().unwrap().to_string())
            })
            .collect();
    let mut all_sorted = all.clone();
    all_sorted.sort();
    assert_eq!(all_sorted, ["AG-1", "AG-2", "LMS-1", "LMS-2"]);
    // Crego: the two LMS repayments + two records written by B, nothing more.
    let mut utrs: Vec<String> =
        h.sb.state()
            .records
            .values()
            .map(|r| r["utr"].as_str().unwrap().to_string())
            .collect();
    utrs.sort();
    assert_eq!(utrs, ["AG-1", "AG-2", "LMS-1", "LMS-2"]);
    // The webhooks of the pushed payments came and were recognised.
    assert!(h.sb.state().webhooks.iter().filter(|(_, s)| *s == 200).count() >= 4);
    assert_eq!(h.store().ledger_unresolved().unwrap(), 0);
}

#[tokio::test]
async fn a_payment_refused_by_preflight_is_a_dead_letter_never_sent() {
    let mut h = Harness::new(12, 50).await;
    let loans = placed(&h).await;
    h.edit_append("[mapping.payment]\npayment_method = '\"Bitcoin\"'\n");
    h.sb.repayment(&loans[0].1, dec("10"), "UTR-X");
    let before = h.sb.requests().len();
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.push_repayments.unmapped, 1);
    let rows = h.store().ledger_for_loan(Direction::ToCredgenics, &loans[0].0).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, LedgerState::Dead);
    let reason = rows[0].dead_reason.as_deref().unwrap();
    assert!(
        reason.contains("payment_method") && reason.contains("Bitcoin"),
        "{reason}"
    );
    assert!(
        !h.requests_since(before)
            .iter()
            .any(|r| r.path.starts_with("/recovery/payments/")),
        "an invalid payment never produces a request"
    );
}

#[tokio::test]
async fn a_payment_the_api_rejects_is_a_dead_letter_and_once_exits_1() {
    let h = Harness::new(12, 50).await;
    let loans = placed(&h).await;
    h.sb.repayment(&loans[0].1, dec("10"), "UTR-Y");
    h.sb.fail_next_on(
        crego_credgenics_sync::partners::http::Api::Credgenics,
        Some("PATCH /recovery/payments/"),
        1,
        400,
        None,
    );
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.push_repayments.delivery.dead, 1, "a 400 is not retried");
    let rows = h.store().ledger_for_loan(Direction::ToCredgenics, &loans[0].0).unwrap();
    assert_eq!(rows[0].state, LedgerState::Dead);
    assert!(
        rows[0].dead_reason.as_deref().unwrap().contains("HTTP 400"),
        "{:?}",
        rows[0].dead_reason
    );
    // Dead letters are not retried by later cycles, and keep the exit code at 1.
    let before = h.sb.requests().len();
    assert_eq!(h.once().await.exit_code(), 1);
    assert!(writes(&h.requests_since(before)).is_empty());
}

#[tokio::test]
async fn a_payment_in_doubt_is_looked_up_before_it_is_sent_again() {
    let h = Harness::new(12, 50).await;
    let loans = placed(&h).await;
    h.sb.repayment(&loans[0].1, dec("10"), "UTR-D1");
    h.sb.repayment(&loans[1].1, dec("20"), "UTR-D2");
    // Both pushes answer 502: the daemon cannot know whether they were written.
    h.sb.fail_next_on(
        crego_credgenics_sync::partners::http::Api::Credgenics,
        Some("PATCH /recovery/payments/"),
        2,
        502,
        None,
    );
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1, "in doubt needs attention");
    assert_eq!(report.push_repayments.delivery.in_doubt, 2);
    // Next cycle: looks at payment_history first, then sends each once.
    let before = h.sb.requests().len();
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let reqs = h.requests_since(before);
    for loan in [&loans[0].0, &loans[1].0] {
        let look = reqs
            .iter()
            .position(|r| r.method == "GET" && r.path == format!("/recovery/loan/{loan}"))
            .unwrap();
        let send = reqs
            .iter()
            .position(|r| r.method == "PATCH" && r.path == format!("/recovery/payments/{loan}"))
            .unwrap();
        assert!(look < send, "looked before sending again");
    }
    assert_eq!(payments_at_credgenics(&h, &loans[0].0).len(), 1);
    assert_eq!(payments_at_credgenics(&h, &loans[1].0).len(), 1);
}

#[tokio::test]
async fn a_lost_answer_is_confirmed_by_a_look_up_and_never_sent_twice() {
    use crego_credgenics_sync::partners::http::Api;
    let h = Harness::new(12, 50).await;
    h.listen().await;
    let loans = placed(&h).await;
    h.sb.repayment(&loans[0].1, dec("10"), "UTR-L1");
    h.sb.agent_collection(&loans[1].0, dec("33"), "AG-L1").await.unwrap();
    // The writes happen, but their answers are lost (timeouts or 5xx after the fact).
    h.sb.lose_answer_of_next(Api::Credgenics, Some("PATCH /recovery/payments/"), 1, 504);
    h.sb.lose_answer_of_next(Api::Crego, Some("POST /v1/lms/records/"), 1, 502);
    let first = h.once().await;
    assert_eq!(first.exit_code(), 1, "{first:?}");
    let second = h.once().await;
    assert_eq!(second.exit_code(), 0, "{second:?}");
    assert_eq!(
        second.push_repayments.delivery.confirmed + second.pull_recoveries.delivery.confirmed,
        2
    );
    assert_eq!(payments_at_credgenics(&h, &loans[0].0).len(), 1);
    assert_eq!(records_with_utr(&h, "AG-L1").len(), 1);
}

mod webhook {
    use super::*;

    async fn post(url: &str, token: Option<&str>, body: Vec<u8>) -> reqwest::StatusCode {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.header("X-Webhook-Token", t);
        }
        req.send().await.unwrap().status()
    }

    fn event(loan: &str, reference: &str) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"event": "payment", "data": {"loan_id": loan, "amount_recovered": 2000,
            "final_status": "Partially Recovered", "recovery_method": "Field collection", "payment_method": "Online",
            "payment_mode": "Paytm", "reference_number": reference, "closure_with": "",
            "recovery_date": "2026-11-20 10:59:51", "allocation_month": "2026-11-01", "author": "a@b.in"},
            "created": "2026-11-20 10:59:52"}),
        )
        .unwrap()
    }

    fn webhook_events(h: &Harness) -> usize {
        h.store().webhook_event_count().unwrap()
    }

    #[tokio::test]
    async fn token_required_and_nothing_stored_without_it() {
        let h = Harness::new(4, 100).await;
        let url = h.listen().await;
        let loans = placed(&h).await;
        assert_eq!(post(&url, None, event(&loans[0].0, "R1")).await, 401);
        assert_eq!(post(&url, Some("wrong"), event(&loans[0].0, "R1")).await, 401);
        assert_eq!(webhook_events(&h), 0);
        assert!(
            h.store()
                .ledger_for_loan(Direction::ToCrego, &loans[0].0)
                .unwrap()
                .is_empty()
        );
        // The query parameter works as well as the header.
        assert_eq!(
            post(&format!("{url}?token={WEBHOOK_TOKEN}"), None, event(&loans[0].0, "R1")).await,
            200
        );
        assert_eq!(webhook_events(&h), 1);
    }

    #[tokio::test]
    async fn malformed_is_400_oversized_is_413_unknown_events_are_ignored() {
        let h = Harness::new(4, 100).await;
        let url = h.listen().await;
        assert_eq!(post(&url, Some(WEBHOOK_TOKEN), b"{not json".to_vec()).await, 400);
        assert_eq!(
            post(&url, Some(WEBHOOK_TOKEN), br#"{"event":"payment","data":{}}"#.to_vec()).await,
            400
        );
        let big = format!(r#"{{"event":"email","pad":"{}"}}"#, "x".repeat(1 << 20));
        assert_eq!(post(&url, Some(WEBHOOK_TOKEN), big.into_bytes()).await, 413);
        assert_eq!(
            post(
                &url,
                Some(WEBHOOK_TOKEN),
                br#"{"event":"email","loan_id":"1137"}"#.to_vec()
            )
            .await,
            200
        );
        assert_eq!(webhook_events(&h), 0);
    }

    #[tokio::test]
    async fn duplicate_delivery_is_one_ledger_row() {
        let h = Harness::new(4, 100).await;
        let url = h.listen().await;
        let loans = placed(&h).await;
        for _ in 0..3 {
            assert_eq!(post(&url, Some(WEBHOOK_TOKEN), event(&loans[0].0, "DUP-1")).await, 200);
        }
        let rows = h.store().ledger_for_loan(Direction::ToCrego, &loans[0].0).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].reference, "DUP-1");
        assert_eq!(rows[0].amount, dec("2000"));
        assert_eq!(webhook_events(&h), 3, "each delivery is kept as received");
    }
}

/// Regression (review of the page pipeline): flow C runs beside flow A in daemon mode. A repayment
/// on a loan whose upload is in flight was counted "unplaced" and the stream moved past it, so it
/// never travelled. It is now held (the stream stays before it) and travels once the upload
/// settles.
#[tokio::test]
async fn a_repayment_on_a_loan_being_uploaded_waits_for_it_and_then_travels() {
    let h = Harness::new(20, 50).await;
    let loans = placed(&h).await;
    let (loan_id, bp, _) = &loans[0];
    // Flow A is mid-upload for this loan (a new allocation, say): in flight in the state.
    let store = h.live_store();
    let mut row = store.loan(loan_id).unwrap().unwrap();
    let placed_row = row.clone();
    row.state = LoanState::Uploading;
    row.pending = Some(PendingUpload {
        payload: row.payload.clone().unwrap(),
        month: row.allocation_month.clone().unwrap(),
    });
    store.save_loan(&row, false).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    h.sb.repayment(bp, dec("250"), "UTR-DURING-UPLOAD");

    let config = h.config();
    let clock = crego_credgenics_sync::clock::Clock::system(config.sync.timezone.clone());
    let ctx = crego_credgenics_sync::flows::Context::new(config, store.clone(), clock).unwrap();
    let mut stats = crego_credgenics_sync::flows::FlowCStats::default();
    crego_credgenics_sync::flows::repayments::run(&ctx, None, &mut stats)
        .await
        .unwrap();
    assert_eq!(stats.held, 1, "{stats:?}");
    assert_eq!(stats.unplaced, 0, "{stats:?}");
    assert!(payments_at_credgenics(&h, loan_id).is_empty());

    // The upload settles; the next cycle reads the record again and it travels, once.
    store.save_loan(&placed_row, false).unwrap();
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let pushed = payments_at_credgenics(&h, loan_id);
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0]["payment_reference_number"], "UTR-DURING-UPLOAD");
    assert_eq!(h.once().await.exit_code(), 0);
    assert_eq!(payments_at_credgenics(&h, loan_id).len(), 1, "never twice");
}

/// Regression: an agent collected part of a loan at Credgenics (its webhook stored, not yet
/// written into the LMS) and the borrower paid the rest in the LMS; flow C ran before the
/// collection reached the LMS, saw dues left on the line, and sent the pay-off as `Partially
/// Recovered` — then the collection landed, the line reached 0, and no `Closed` ever went out.
/// Dues at Credgenics are the line's less the recoveries it already holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pay_off_after_an_agent_collection_not_yet_in_the_lms_is_closed() {
    let h = Harness::new(10, 50).await;
    let loans = placed(&h).await;
    h.listen().await;
    let (loan_id, bp, due) = &loans[0];
    let collected = dec("150");
    h.sb.agent_collection(loan_id, collected, "AGENT-PART-1").await.unwrap();
    h.sb.repayment(bp, *due - collected, "UTR-REST-1");
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let pushed: Vec<Value> = payments_at_credgenics(&h, loan_id)
        .into_iter()
        .filter(|p| p["payment_reference_number"] == "UTR-REST-1")
        .collect();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0]["final_status"], "Closed", "{pushed:?}");
    assert_eq!(
        records_with_utr(&h, "AGENT-PART-1").len(),
        1,
        "the collection reached the LMS"
    );
}
