//! Credit-line mode (issue 16, design §8) against the strict credit-line sandbox: a Crego line is
//! one Credgenics customer, each overdue drawdown a transaction; repayments are shared across
//! the drawdowns they settle; agent recoveries come back as LMS records.

mod common;

use common::Harness;
use crego_credgenics_sync::sandbox::SandboxConfig;
use rust_decimal::Decimal;
use serde_json::Value;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A credit-line tenant with one line of three drawdowns: two overdue loans (dues 4000 and
/// 3000) and a topup with nothing due.
struct Line {
    h: Harness,
    account: String,
    customer: String,
    /// Drawdown (id, ref_id = transaction id), oldest first.
    drawdowns: Vec<(String, String)>,
}

async fn line() -> Line {
    let h = Harness::with(SandboxConfig::credit_line()).await;
    let (_, account, customer, refs) = {
        let mut s = h.sb.state();
        crego_credgenics_sync::sandbox::seed::seed_credit_line(
            &mut s,
            1,
            &[
                ("loan", d("10000"), d("4000"), 40, 90.0),
                ("loan", d("8000"), d("3000"), 12, 60.0),
                ("topup", d("5000"), d("0"), 0, 30.0),
            ],
        )
    };
    let drawdowns = refs
        .iter()
        .map(|r| {
            let dd = h.sb.drawdown(&account, r).expect("seeded drawdown");
            (dd["id"].as_str().unwrap().to_string(), r.clone())
        })
        .collect();
    Line {
        h,
        account,
        customer,
        drawdowns,
    }
}

fn credgenics_writes(h: &Harness, from: usize) -> Vec<crego_credgenics_sync::sandbox::RecordedRequest> {
    h.requests_since(from)
        .into_iter()
        .filter(|r| r.api == "credgenics" && r.is_write())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_overdue_drawdown_is_placed_once_under_its_customer() {
    let l = line().await;
    let report = l.h.once().await;
    assert_eq!(
        report.outcome,
        crego_credgenics_sync::flows::RunOutcome::Clear,
        "{report:?}"
    );
    // Again: nothing new to send.
    let before = l.h.sb.requests().len();
    l.h.once().await;
    assert!(
        credgenics_writes(&l.h, before).is_empty(),
        "a second cycle sends nothing"
    );

    let s = l.h.sb.state();
    let c = s
        .credit_line
        .customers
        .get(&l.customer)
        .expect("the line is one customer");
    let placed: Vec<&String> = c.transactions.keys().collect();
    let mut want = vec![&l.drawdowns[0].1, &l.drawdowns[1].1];
    want.sort();
    assert_eq!(
        placed, want,
        "the two overdue drawdowns, not the topup with nothing due"
    );
    for t in c.transactions.values() {
        assert!(
            t.uploads_per_month.values().all(|n| *n == 1),
            "{:?}",
            t.uploads_per_month
        );
        assert_eq!(t.defaults.len(), 1);
    }
    // The claim of each transaction is its drawdown's dues, not the line's.
    let claim = |tid: &str| c.transactions[tid].defaults[0]["total_claim_amount"].clone();
    assert_eq!(claim(&l.drawdowns[0].1), serde_json::json!(4000));
    assert_eq!(claim(&l.drawdowns[1].1), serde_json::json!(3000));
    assert_eq!(c.details["client_customer_id"], Value::String(l.customer.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repayment_settling_two_drawdowns_is_two_payments_summing_to_the_record_and_the_cleared_one_is_closed() {
    let l = line().await;
    l.h.once().await;
    let before = l.h.sb.requests().len();
    let (a, b) = (&l.drawdowns[0], &l.drawdowns[1]);
    l.h.sb.line_repayment(
        &l.account,
        d("5000.50"),
        "UTR-SPLIT-1",
        &[a.0.as_str(), b.0.as_str()],
        None,
    );
    let report = l.h.once().await;
    assert_eq!(
        report.outcome,
        crego_credgenics_sync::flows::RunOutcome::Clear,
        "{report:?}"
    );
    let payments: Vec<_> = credgenics_writes(&l.h, before)
        .into_iter()
        .filter(|r| r.path.contains("/payments/"))
        .collect();
    assert_eq!(payments.len(), 2, "{payments:#?}");
    let mut total = Decimal::ZERO;
    for p in &payments {
        let body = p.body.as_ref().unwrap();
        assert_eq!(body["client_customer_id"], Value::String(l.customer.clone()));
        total += body["amount_recovered"].to_string().parse::<Decimal>().unwrap();
    }
    assert_eq!(total, d("5000.50"), "the shares sum exactly to the record");
    let on = |tid: &str| {
        payments
            .iter()
            .find(|p| p.path.ends_with(&format!("/payments/{tid}")))
            .unwrap_or_else(|| panic!("a payment on {tid}: {payments:#?}"))
            .body
            .clone()
            .unwrap()
    };
    let first = on(&a.1);
    assert_eq!(first["amount_recovered"], serde_json::json!(4000));
    assert_eq!(
        first["final_status"], "Closed",
        "the payment that clears the older drawdown"
    );
    assert_eq!(first["closure_with"], "NOC");
    let second = on(&b.1);
    assert_eq!(second["amount_recovered"], serde_json::json!(1000.5));
    assert_eq!(second["final_status"], "Partially Recovered");
    // Each share is its own payment entry in the customer's history, recognisable on its own.
    let refs: Vec<String> = payments
        .iter()
        .map(|p| {
            p.body.as_ref().unwrap()["payment_reference_number"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_ne!(refs[0], refs[1]);
    assert!(refs.iter().all(|r| r.starts_with("UTR-SPLIT-1")), "{refs:?}");

    // Nothing comes back as a recovery (no echo), and nothing is sent again.
    let before = l.h.sb.requests().len();
    l.h.once_polling_all().await;
    assert!(credgenics_writes(&l.h, before).is_empty());
    let s = l.h.sb.state();
    let echoed = s
        .records
        .values()
        .filter(|r| r["utr"].as_str().is_some_and(|u| u.starts_with("UTR-SPLIT-1/")))
        .count();
    assert_eq!(echoed, 0, "flow C's payments are never written back to the LMS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_recovery_on_one_transaction_becomes_one_lms_record() {
    let l = line().await;
    l.h.once().await;
    let tid = &l.drawdowns[1].1;
    l.h.sb
        .cl_agent_collection(&l.customer, tid, d("700"), "AGENT-REF-9")
        .expect("the customer has the transaction");
    l.h.once_polling_all().await;
    l.h.once_polling_all().await;
    let s = l.h.sb.state();
    let written: Vec<&Value> = s.records.values().filter(|r| r["utr"] == "AGENT-REF-9").collect();
    assert_eq!(written.len(), 1, "one record, however often the history is read");
    let r = written[0];
    assert_eq!(r["account"], Value::String(l.account.clone()), "on the line's account");
    assert_eq!(r["amount"].to_string().parse::<Decimal>().unwrap(), d("700"));
    assert!(
        r["remark"].as_str().unwrap_or_default().contains(tid.as_str()),
        "it names its transaction when only one is allocated that month: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_change_opens_new_allocations_per_transaction() {
    let l = line().await;
    l.h.once_at("2026-11-20T10:00:00+05:30").await;
    let before = l.h.sb.requests().len();
    l.h.once_at("2026-11-25T10:00:00+05:30").await;
    assert!(
        credgenics_writes(&l.h, before).is_empty(),
        "same month, nothing changed: no call"
    );
    // The end-of-day run moves every drawdown's dpd (and so the line); the next cycle runs in
    // December (IST).
    for (id, _) in &l.drawdowns[..2] {
        l.h.sb.update_drawdown(&l.account, id, |dd| {
            dd["dpd"] = serde_json::json!(dd["dpd"].as_i64().unwrap() + 12)
        });
    }
    let before = l.h.sb.requests().len();
    let report = l.h.once_at("2026-12-02T10:00:00+05:30").await;
    assert_eq!(report.place_loans.new_allocations, 2, "{report:?}");
    let posts: Vec<_> = credgenics_writes(&l.h, before);
    assert_eq!(posts.len(), 2, "one upload per transaction, nothing else: {posts:#?}");
    assert!(
        posts
            .iter()
            .all(|p| p.method == "POST" && p.body.as_ref().unwrap()["defaults"][0]["allocation_month"] == "2026-12-01")
    );
    let s = l.h.sb.state();
    let c = &s.credit_line.customers[&l.customer];
    for (_, tid) in &l.drawdowns[..2] {
        let t = &c.transactions[tid];
        let months: Vec<&str> = t
            .defaults
            .iter()
            .map(|d| d["allocation_month"].as_str().unwrap())
            .collect();
        assert_eq!(months, ["2026-11-01", "2026-12-01"], "{tid}");
        assert!(
            t.uploads_per_month.values().all(|n| *n == 1),
            "{:?}",
            t.uploads_per_month
        );
    }
}

fn cli(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(common::binary())
        .args(["--config", config.to_str().unwrap()])
        .args(args)
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
async fn dry_run_and_status_work_in_credit_line_mode_and_lending_only_commands_say_so() {
    let l = line().await;
    let config = l.h.write_config();
    let before = l.h.sb.requests().len();
    let (code, out, err) = cli(&config, &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let uploads: Vec<Value> = out
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["dry_run"] == true && v["method"] == "POST")
        .collect();
    let mut paths: Vec<&str> = uploads.iter().map(|u| u["path"].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            format!("/loan/{}", l.drawdowns[0].1),
            format!("/loan/{}", l.drawdowns[1].1)
        ],
        "{out}"
    );
    assert!(
        uploads
            .iter()
            .all(|u| u["payload"]["client_customer_id"] == l.customer.as_str())
    );
    assert!(credgenics_writes(&l.h, before).is_empty(), "a dry run writes nothing");

    let (code, _, err) = cli(&config, &["--once"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&config, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mode"], "credit_line");
    assert_eq!(v["credit_line"]["customers"], 1);
    assert_eq!(v["credit_line"]["transactions"]["placed"], 2);
    let (code, out, _) = cli(&config, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("credit lines: 1 customer(s)"), "{out}");

    // preview shows each drawdown as a transaction, with where it stands.
    let lead = {
        let s = l.h.sb.state();
        s.programs
            .iter()
            .find(|(_, p)| p[0]["id"] == l.account.as_str())
            .unwrap()
            .0
            .clone()
    };
    let (code, out, err) = cli(&config, &["preview", "--lead", &lead]);
    assert_eq!(code, 0, "{err}");
    for (_, tid) in &l.drawdowns[..2] {
        assert!(out.contains(&format!("POST /loan/{tid}")), "{out}");
    }
    assert!(out.contains("state: placed"), "{out}");
    assert!(out.contains("not overdue"), "the topup: {out}");
    let (code, out2, err) = cli(&config, &["preview", "--loan", &l.drawdowns[0].1]);
    assert_eq!(code, 0, "{err}");
    assert!(out2.starts_with(&format!("customer {}", l.customer)), "{out2}");
    for command in [&["reconcile"][..], &["doctor"], &["preview", "--record", "x"]] {
        let (code, _, err) = cli(&config, command);
        assert_eq!(code, 2, "{command:?}: {err}");
        assert!(err.contains("credit_line"), "{command:?} says why: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_webhook_naming_a_transaction_has_its_customer_read_by_the_next_delivery_run() {
    use crego_credgenics_sync::flows::{Poll, jobs};
    let l = line().await;
    l.h.once().await;
    let url = l.h.listen().await;
    let tid = &l.drawdowns[0].1;
    let payment =
        l.h.sb
            .cl_agent_collection(&l.customer, tid, d("300"), "AGENT-HOOK-1")
            .unwrap();
    let post = |body: Value| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(&url)
                .header("X-Webhook-Token", common::WEBHOOK_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let hook = crego_credgenics_sync::sandbox::payment_webhook(tid, &payment);
    assert_eq!(post(hook).await, 200);
    // The frequent job (repayments out, then recoveries delivered) without any poll slot.
    let ctx = l.h.context();
    jobs::push_repayments(&ctx, None, &mut Default::default())
        .await
        .unwrap();
    jobs::pull_recoveries(&ctx, Poll::Skip, &mut Default::default())
        .await
        .unwrap();
    let written =
        l.h.sb
            .state()
            .records
            .values()
            .filter(|r| r["utr"] == "AGENT-HOOK-1")
            .count();
    assert_eq!(written, 1, "the webhook had the customer read at once");
    // Once read, no further read is asked for; an unknown id asks for nothing.
    assert!(l.h.live_store().cl_customers_poll_requested().unwrap().is_empty());
    let stranger = crego_credgenics_sync::sandbox::payment_webhook("NOT-A-TRANSACTION", &payment);
    assert_eq!(post(stranger).await, 200);
    assert!(l.h.live_store().cl_customers_poll_requested().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_dead_letter_is_retried_once_the_mapping_is_fixed() {
    let mut l = line().await;
    l.h.once().await;
    l.h.sb
        .cl_agent_collection(&l.customer, &l.drawdowns[1].1, d("450"), "AGENT-DEAD-1")
        .unwrap();
    // A record mapping that cannot work: the recovery is a dead letter, nothing written.
    l.h.edit_append("[mapping.record]\nremark = 'error(\"no remark today\")'\n");
    l.h.once_polling_all().await;
    let dead = l.h.live_store().dead_letters().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(l.h.sb.state().records.values().all(|r| r["utr"] != "AGENT-DEAD-1"));
    // Fixed, then retried from the CLI: written once.
    l.h.appended.clear();
    l.h.close_store();
    let config = l.h.write_config();
    let (code, _, err) = cli(&config, &["dead-letters", "retry", "--all"]);
    assert_eq!(code, 0, "{err}");
    let report = l.h.once_polling_all().await;
    assert_eq!(
        report.outcome,
        crego_credgenics_sync::flows::RunOutcome::Clear,
        "{report:?}"
    );
    let written: Vec<Value> =
        l.h.sb
            .state()
            .records
            .values()
            .filter(|r| r["utr"] == "AGENT-DEAD-1")
            .cloned()
            .collect();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["account"], Value::String(l.account.clone()));
}
