//! Money and collection status under real partner timing (issue 10), in daemon mode as it runs in
//! production — flows A, B and C on their own schedules, C more often than A — against the
//! realistic sandbox (design §7): a lagging LMS, repayments sharing dates, one loan's records on
//! several pages, items changing while a stream is paged, `payment_history` as documented.

mod common;
use common::ExitCode;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use common::{Harness, NEVER, WEBHOOK_TOKEN, overdue_loan_ids, schedules, wait_for};
use crego_credgenics_sync::sandbox::Realism;
use crego_credgenics_sync::server::WEBHOOK_PATH;
use crego_credgenics_sync::store::{Direction, LoanState, Store};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn amount(v: &Value) -> Decimal {
    Decimal::from_str(&v.to_string()).unwrap()
}

/// The daemon's schedules of these tests: C every second, A every three, the poll every five.
fn daemon_mode(h: &mut Harness, page_size: u32) {
    h.edit("page_size", &page_size.to_string());
    h.edit_append("[sync]\nline_wait_secs = 30\n");
    h.edit_append(&schedules("*/3 * * * * *", "* * * * * *", "*/5 * * * * *", NEVER));
}

/// (loan id, borrower-program id, due) of an overdue line.
type Line = (String, String, Decimal);

/// Every overdue line, as the sandbox holds them now.
fn overdue_lines(h: &Harness) -> Vec<Line> {
    common::overdue_lines(&h.sb)
}

fn cg_history(h: &Harness, loan_id: &str) -> Vec<Value> {
    h.sb.state()
        .cg_loans
        .get(loan_id)
        .map(|l| l.payment_history.clone())
        .unwrap_or_default()
}

fn line_due(h: &Harness, bp: &str) -> Decimal {
    let s = h.sb.state();
    let (lead, i) = s.find_program(bp).unwrap();
    amount(&s.programs[&lead][i]["line_detail"]["due_amount"])
}

/// Nothing pending, in flight or dead in the state, and no line move still owed by the LMS.
fn settled(h: &Harness) -> bool {
    let store = Store::open_read_only(&h.state).unwrap();
    h.sb.state().pending_line_moves() == 0
        && store.ledger_unresolved().unwrap() == 0
        && store.loans_unresolved().unwrap() == 0
}

fn closed_count(history: &[Value]) -> usize {
    history.iter().filter(|p| p["final_status"] == "Closed").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_closed_per_paid_off_loan_on_its_latest_repayment_in_daemon_mode() {
    let mut h = Harness::realistic(
        10,
        100,
        Realism {
            line_lag: Duration::from_millis(1500),
            shared_date_within_secs: 1.0,
            ..Realism::default()
        },
    )
    .await;
    daemon_mode(&mut h, 2);
    let lines = overdue_lines(&h);
    assert!(lines.len() >= 6, "{lines:?}");
    let d = h.start_daemon().await;
    h.sb.set_webhook_target(&d.url(WEBHOOK_PATH), WEBHOOK_TOKEN);
    wait_for("every overdue loan placed", 60, || {
        h.sb.state().cg_loans.len() == lines.len()
    })
    .await;

    let [l0, l1, l2, l3, l4, l5] = std::array::from_fn(|i| lines[i].clone());
    // l0: paid off by one repayment.
    h.sb.repayment(&l0.1, l0.2, "U0-1");
    // l1: paid off by two repayments booked together: they share a date; the later booking is
    // the latest.
    let half1 = (l1.2 / dec("2")).round_dp(2);
    h.sb.repayment(&l1.1, half1, "U1-1");
    h.sb.repayment(&l1.1, l1.2 - half1, "U1-2");
    // l2: paid off by three repayments on different dates, among other loans' records, so that
    // they are read on different pages (page size 2).
    let third2 = (l2.2 / dec("3")).round_dp(2);
    h.sb.repayment(&l2.1, third2, "U2-1");
    h.sb.repayment(&l3.1, dec("100.25"), "U3-1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.sb.repayment(&l2.1, third2, "U2-2");
    h.sb.repayment(&l4.1, dec("55"), "U4-1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.sb.repayment(&l2.1, l2.2 - third2 - third2, "U2-3");
    // l5: a part repayment first; the pay-off comes once the first has gone out.
    h.sb.repayment(&l5.1, dec("10"), "U5-1");
    wait_for("the first part repayment of l5 pushed", 30, || {
        !cg_history(&h, &l5.0).is_empty()
    })
    .await;
    h.sb.repayment(&l5.1, l5.2 - dec("10"), "U5-2");

    wait_for("every repayment pushed and the state settled", 60, || {
        let n: usize = [&l0, &l1, &l2, &l3, &l4, &l5]
            .iter()
            .map(|l| cg_history(&h, &l.0).len())
            .sum();
        n == 10 && settled(&h)
    })
    .await;
    assert_eq!(d.stop().await, 0);

    let expect: [(&Line, Option<&str>); 6] = [
        (&l0, Some("U0-1")),
        (&l1, Some("U1-2")),
        (&l2, Some("U2-3")),
        (&l3, None),
        (&l4, None),
        (&l5, Some("U5-2")),
    ];
    for (line, closing) in expect {
        let history = cg_history(&h, &line.0);
        let statuses: BTreeMap<&str, &str> = history
            .iter()
            .map(|p| {
                (
                    p["payment_reference_number"].as_str().unwrap(),
                    p["final_status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(statuses.len(), history.len(), "no payment twice: {history:?}");
        match closing {
            Some(utr) => {
                assert!(line_due(&h, &line.1).is_zero(), "{} is paid off", line.0);
                assert_eq!(closed_count(&history), 1, "one Closed on {}: {statuses:?}", line.0);
                assert_eq!(statuses[utr], "Closed", "on the latest repayment: {statuses:?}");
                let closed = history.iter().find(|p| p["final_status"] == "Closed").unwrap();
                assert_eq!(closed["closure_with"], "NOC");
            }
            None => {
                assert!(!line_due(&h, &line.1).is_zero());
                assert_eq!(closed_count(&history), 0, "{} is not paid off: {statuses:?}", line.0);
            }
        }
        let pushed: Decimal = history.iter().map(|p| amount(&p["amount_recovered"])).sum();
        let repaid: Decimal =
            h.sb.state()
                .records
                .values()
                .filter(|r| r["account"] == line.1.as_str() && r["type"] == "repayment")
                .map(|r| amount(&r["amount"]))
                .sum();
        assert_eq!(pushed, repaid, "money of {} to the paisa", line.0);
    }
    // Within the month the claim was never PATCHed, though the lines moved.
    for r in h.sb.requests() {
        if r.api == "credgenics" && r.method == "PATCH" && r.path.starts_with("/recovery/loan/") {
            assert!(r.body.as_ref().unwrap().get("defaults").is_none(), "{r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_without_reference_by_webhook_and_by_poll_is_one_lms_record() {
    let mut h = Harness::realistic(6, 100, Realism::default()).await;
    daemon_mode(&mut h, 2);
    let lines = overdue_lines(&h);
    let d = h.start_daemon().await;
    h.sb.set_webhook_target(&d.url(WEBHOOK_PATH), WEBHOOK_TOKEN);
    wait_for("placement", 60, || h.sb.state().cg_loans.len() == lines.len()).await;
    let (loan, bp, _) = lines[0].clone();

    // An agent collects ₹777 with no payment reference: the webhook arrives (twice, as partners
    // retry), and the poll finds the same payment in the history, where it has no reference and
    // no recovery_date, only its payment_id and `created`.
    let payment = h.sb.agent_collection(&loan, dec("777"), "").await.unwrap();
    let hook = crego_credgenics_sync::sandbox::payment_webhook(&loan, &payment);
    let url = format!("{}?token={WEBHOOK_TOKEN}", d.url(WEBHOOK_PATH));
    let again = reqwest::Client::new().post(&url).json(&hook).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let said: Value = again.json().await.unwrap();
    assert!(said["status"].as_str().unwrap().starts_with("stored"), "{said}");

    let records = |h: &Harness| -> Vec<Value> {
        h.sb.state()
            .records
            .values()
            .filter(|r| r["account"] == bp.as_str() && r["amount"].as_f64() == Some(777.0))
            .cloned()
            .collect()
    };
    wait_for("the recovery written into the LMS", 30, || !records(&h).is_empty()).await;
    // Let the nightly-style poll run twice more (every 5 s) and C deliver meanwhile.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(d.stop().await, 0);
    let written = records(&h);
    assert_eq!(written.len(), 1, "one Crego record for one collection: {written:?}");
    assert!(written[0]["utr"].as_str().unwrap().starts_with("CG-"), "{written:?}");
    let store = Store::open_read_only(&h.state).unwrap();
    let rows = store.ledger_for_loan(Direction::ToCrego, &loan).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].source_key.contains(":pid:"),
        "keyed by its payment_id: {}",
        rows[0].source_key
    );
    assert_eq!(rows[0].amount, dec("777"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_in_month_patch_carries_a_claim_key_while_loan_level_changes_are_patched() {
    let mut h = Harness::realistic(6, 100, Realism::default()).await;
    daemon_mode(&mut h, 2);
    let lines = overdue_lines(&h);
    let d = h.start_daemon().await;
    h.sb.set_webhook_target(&d.url(WEBHOOK_PATH), WEBHOOK_TOKEN);
    wait_for("placement", 60, || h.sb.state().cg_loans.len() == lines.len()).await;
    let claims: BTreeMap<String, Value> =
        h.sb.state()
            .cg_loans
            .iter()
            .map(|(id, l)| (id.clone(), Value::Array(l.defaults.clone())))
            .collect();

    // Repayments lower the dues and an end-of-day run moves the late fees: the claim stays.
    for (i, (_, bp, _)) in lines.iter().enumerate().take(3) {
        h.sb.repayment(bp, dec("100") + Decimal::from(i), &format!("EOD-{i}"));
    }
    for (_, bp, _) in &lines[3..] {
        h.sb.state().update_line(bp, |ld| {
            ld["total_due_penal"] = json!(ld["total_due_penal"].as_f64().unwrap_or(0.0) + 250.0);
            ld["dpd"] = json!(ld["dpd"].as_i64().unwrap() + 1);
        });
    }
    // A loan-level change: the applicant's e-mail.
    let (changed_loan, changed_bp, _) = lines[4].clone();
    let lead = h.store().loan(&changed_loan).unwrap().unwrap().lead_id;
    h.sb.state().leads.get_mut(&lead).unwrap()["email"] = json!("new.mail@example.com");
    h.sb.state().update_line(&changed_bp, |_| {});

    wait_for("the e-mail patched", 30, || {
        h.sb.state().cg_loans[&changed_loan].details["applicant_email"] == "new.mail@example.com"
    })
    .await;
    wait_for("the repayments pushed", 30, || settled(&h)).await;
    tokio::time::sleep(Duration::from_secs(4)).await; // one more flow A run over the moved lines
    assert_eq!(d.stop().await, 0);

    let patches: Vec<_> =
        h.sb.requests()
            .into_iter()
            .filter(|r| r.api == "credgenics" && r.method == "PATCH" && r.path.starts_with("/recovery/loan/"))
            .collect();
    assert!(!patches.is_empty());
    for p in &patches {
        let body = p.body.as_ref().unwrap();
        assert!(
            body.get("defaults").is_none(),
            "a claim key in an in-month PATCH: {body}"
        );
    }
    assert!(
        patches
            .iter()
            .any(|p| p.body.as_ref().unwrap()["applicant_email"] == "new.mail@example.com")
    );
    for (id, claim) in claims {
        assert_eq!(
            Value::Array(h.sb.state().cg_loans[&id].defaults.clone()),
            claim,
            "claim of {id} unchanged within the month"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_while_read_items_keep_changing_places_places_every_overdue_loan_in_one_run() {
    let mut h = Harness::realistic(
        60,
        50,
        Realism {
            touch_pct: 70,
            ..Realism::default()
        },
    )
    .await;
    h.edit("page_size", "3");
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert!(h.sb.state().touches() >= 10, "the stream changed while it was read");
    let placed: Vec<String> = h.sb.state().cg_loans.keys().cloned().collect();
    assert_eq!(placed, overdue_loan_ids(&h.sb), "every overdue loan placed in one run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_lines_sharing_one_updated_at_still_make_progress() {
    let mut h = Harness::realistic(
        20,
        50,
        Realism {
            touch_pct: 0,
            ..Realism::default()
        },
    )
    .await;
    h.edit("page_size", "3");
    {
        // An end-of-day job stamps every line with the same instant.
        let mut s = h.sb.state();
        let at = crego_credgenics_sync::clock::wall_secs().floor() - 60.0;
        for progs in s.programs.values_mut() {
            for p in progs.iter_mut() {
                p["line_detail"]["updated_at"] = json!(at);
            }
        }
        s.reindex();
    }
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let placed: Vec<String> = h.sb.state().cg_loans.keys().cloned().collect();
    assert_eq!(placed, overdue_loan_ids(&h.sb));
    assert_eq!(report.place_loans.scanned, 20, "each line read once: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_that_is_gone_is_a_dead_letter_while_the_cursor_moves_on_and_readyz_stays_green() {
    let mut h = Harness::realistic(8, 100, Realism::default()).await;
    daemon_mode(&mut h, 2);
    h.edit_append("[daemon]\nstuck_after_secs = 60\n");
    let lines = overdue_lines(&h);
    // The lead of one overdue line is gone from the CRM (404).
    let gone = lines[1].clone();
    let lead_id = {
        let s = h.sb.state();
        s.find_program(&gone.1).unwrap().0
    };
    let lead = h.sb.state().leads.remove(&lead_id).unwrap();
    let d = h.start_daemon().await;
    wait_for("the others placed", 60, || {
        h.sb.state().cg_loans.len() == lines.len() - 1
    })
    .await;
    wait_for("the dead letter", 10, || {
        Store::open_read_only(&h.state)
            .unwrap()
            .line_dead_letters()
            .unwrap()
            .len()
            == 1
    })
    .await;
    // Two more flow A runs: the line stays a dead letter, the stream does not stop at it.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let store = Store::open_read_only(&h.state).unwrap();
    let letters = store.line_dead_letters().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].borrower_program_id, gone.1);
    assert!(letters[0].reason.contains("404"), "{:?}", letters[0]);
    let newest_line = {
        let s = h.sb.state();
        s.line_index.keys().next_back().unwrap().0 as f64 / 1e6
    };
    let cursor = store.cursor("line_details").unwrap().unwrap();
    assert!(
        (cursor - newest_line).abs() < 1e-3,
        "cursor {cursor} moved past the dead line to {newest_line}"
    );
    // Readiness goes by when each stream was last read to its end: after the dead letter, still.
    let checked = store
        .streams()
        .unwrap()
        .into_iter()
        .find(|s| s.stream == "line_details")
        .and_then(|s| s.checked_at)
        .unwrap();
    assert!(
        checked > letters[0].updated_at + 2.0,
        "read to its end since: {checked}"
    );
    let ready = reqwest::get(d.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    drop(store);

    // The lead comes back; an operator retries the dead letter; the next run places the loan.
    h.sb.state().leads.insert(lead_id, lead);
    let letter = format!("line:{}", letters[0].line_id);
    let cfg = h.write_config();
    let out = tokio::process::Command::new(common::binary())
        .args(["--config", cfg.to_str().unwrap(), "dead-letters", "retry", &letter])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the retried loan placed", 30, || {
        h.sb.state().cg_loans.contains_key(&gone.0)
    })
    .await;
    wait_for("the dead letter cleared", 10, || {
        Store::open_read_only(&h.state)
            .unwrap()
            .line_dead_letters()
            .unwrap()
            .is_empty()
    })
    .await;
    assert_eq!(d.stop().await, 0);
    let loan = h.store().loan(&gone.0).unwrap().unwrap();
    assert_eq!(loan.state, LoanState::Placed);
}
