//! Flow A against the sandbox: placement, updates, allocation months, rejections, rate limits and
//! refused credentials.

mod common;
use common::ExitCode;

use std::collections::BTreeSet;

use common::{Harness, overdue_loan_ids, writes};
use crego_credgenics_sync::partners::credgenics::rules::is_allocation_month;
use crego_credgenics_sync::partners::http::Api;
use crego_credgenics_sync::store::LoanState;
use serde_json::{Value, json};

/// 2026-11-30T20:00Z is already 1 December in India: the month must be December.
const DEC_1_IST: &str = "2026-11-30T20:00:00Z";
const NOV_20_IST: &str = "2026-11-20T10:00:00+05:30";

fn posts_by_loan(reqs: &[&crego_credgenics_sync::sandbox::RecordedRequest]) -> Vec<String> {
    let mut ids: Vec<String> = reqs
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.trim_start_matches("/recovery/loan/").to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn every_overdue_program_is_placed_exactly_once_in_the_ist_month() {
    let h = Harness::new(40, 30).await;
    let overdue = overdue_loan_ids(&h.sb);
    assert!(overdue.len() >= 5, "seed has overdue lines");

    let report = h.once_at(DEC_1_IST).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.place_loans.placed as usize, overdue.len());
    assert_eq!(report.place_loans.rejected, 0);

    let reqs = h.sb.requests();
    let w = writes(&reqs);
    assert_eq!(
        posts_by_loan(&w),
        overdue,
        "one POST per overdue program, none for the others"
    );
    assert!(w.iter().all(|r| r.method == "POST" && r.status == 201));
    for r in &w {
        let body = r.body.as_ref().unwrap();
        let month = body["defaults"][0]["allocation_month"].as_str().unwrap();
        assert_eq!(month, "2026-12-01");
        assert!(is_allocation_month(month));
        assert_eq!(
            body["loan_id"].as_str().unwrap(),
            r.path.trim_start_matches("/recovery/loan/")
        );
    }
    for loan in h.sb.state().cg_loans.values() {
        assert!(loan.uploads_per_month.values().all(|n| *n == 1));
    }

    // A second cycle with nothing changed: one list request per stream, no Credgenics request.
    let before = h.sb.requests().len();
    let second = h.once_at(DEC_1_IST).await;
    assert_eq!(second.exit_code(), 0);
    let reqs = h.requests_since(before);
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/lms/line-details/", "/v1/lms/records/"], "{reqs:?}");
}

#[tokio::test]
async fn non_overdue_lines_are_never_sent() {
    let h = Harness::new(20, 0).await;
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.place_loans.scanned, 20);
    assert_eq!(report.place_loans.skipped, 20);
    assert!(
        h.sb.requests()
            .iter()
            .all(|r| r.api == "crego" && r.method == "GET" && r.path.starts_with("/v1/lms/"))
    );
}

#[tokio::test]
async fn a_changed_line_is_one_patch_of_the_loan_level_keys_and_the_claim_stays_frozen() {
    let h = Harness::new(20, 50).await;
    assert_eq!(h.once_at(NOV_20_IST).await.exit_code(), 0);
    let target = overdue_loan_ids(&h.sb)[0].clone();
    let loan = h.store().loan(&target).unwrap().unwrap();
    let bp = loan.borrower_program_id.clone();

    // Dues move within the month: the claim is a snapshot (design §1A), so no call at all.
    let before = h.sb.requests().len();
    let old_due =
        h.sb.state()
            .programs
            .values()
            .flatten()
            .find(|p| p["id"] == bp.as_str())
            .unwrap()["line_detail"]["due_amount"]
            .as_f64()
            .unwrap();
    h.sb.state().update_line(&bp, |ld| {
        ld["due_amount"] = json!(old_due + 1000.0);
        ld["total_due_penal"] = json!(ld["total_due_penal"].as_f64().unwrap() + 1000.0);
    });
    let report = h.once_at(NOV_20_IST).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.place_loans.updated, 0, "{report:?}");
    assert!(writes(&h.requests_since(before)).is_empty());

    // A loan-level change (the applicant's e-mail) is still one PATCH, of that key only.
    let before = h.sb.requests().len();
    h.sb.state().leads.get_mut(&loan.lead_id).unwrap()["email"] = json!("changed.address@example.com");
    h.sb.state().update_line(&bp, |_| {});
    let report = h.once_at(NOV_20_IST).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.place_loans.updated, 1, "{report:?}");
    let reqs = h.requests_since(before);
    let w = writes(&reqs);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].method, "PATCH");
    assert_eq!(w[0].path, format!("/recovery/loan/{target}"));
    let body = w[0].body.as_ref().unwrap();
    let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["applicant_email"]), "{body}");
    assert_eq!(w[0].status, 200);
    // Credgenics still holds the claim as uploaded.
    let claim = h.sb.state().cg_loans[&target].defaults[0].clone();
    assert_eq!(
        claim,
        loan.payload.unwrap()["defaults"][0],
        "the claim is unchanged within the month"
    );
}

#[tokio::test]
async fn a_new_month_is_one_new_allocation() {
    let h = Harness::new(20, 50).await;
    assert_eq!(h.once_at(NOV_20_IST).await.exit_code(), 0);
    let target = overdue_loan_ids(&h.sb)[0].clone();
    let bp = h.store().loan(&target).unwrap().unwrap().borrower_program_id;
    // The end-of-day run moves dpd; the next cycle runs in December (IST).
    h.sb.state()
        .update_line(&bp, |ld| ld["dpd"] = json!(ld["dpd"].as_i64().unwrap() + 11));

    let before = h.sb.requests().len();
    let report = h.once_at(DEC_1_IST).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.place_loans.new_allocations, 1);
    let reqs = h.requests_since(before);
    let w = writes(&reqs);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].method, "POST");
    assert_eq!(
        w[0].body.as_ref().unwrap()["defaults"][0]["allocation_month"],
        "2026-12-01"
    );

    let state = h.sb.state();
    let loan = &state.cg_loans[&target];
    let months: Vec<&str> = loan
        .defaults
        .iter()
        .map(|d| d["allocation_month"].as_str().unwrap())
        .collect();
    assert_eq!(months, ["2026-11-01", "2026-12-01"]);
    assert!(loan.uploads_per_month.values().all(|n| *n == 1));
    drop(state);
    let row = h.store().loan(&target).unwrap().unwrap();
    assert_eq!(row.allocation_month.as_deref(), Some("2026-12-01"));
    assert_eq!(h.store().allocations(&target).unwrap(), ["2026-11-01", "2026-12-01"]);
}

#[tokio::test]
async fn cured_and_closed_lines_change_state_without_a_call() {
    let h = Harness::new(20, 50).await;
    assert_eq!(h.once_at(NOV_20_IST).await.exit_code(), 0);
    let ids = overdue_loan_ids(&h.sb);
    let (cured, closed) = (ids[0].clone(), ids[1].clone());
    let bp = |id: &str| h.store().loan(id).unwrap().unwrap().borrower_program_id;
    h.sb.state().update_line(&bp(&cured), |ld| {
        ld["dpd"] = json!(0);
        ld["due_amount"] = json!(0);
    });
    h.sb.state().update_line(&bp(&closed), |ld| {
        ld["dpd"] = json!(0);
        ld["due_amount"] = json!(0);
        ld["total_outstanding"] = json!(0);
    });
    let before = h.sb.requests().len();
    let report = h.once_at(NOV_20_IST).await;
    assert_eq!((report.place_loans.cured, report.place_loans.closed), (1, 1));
    assert!(writes(&h.requests_since(before)).is_empty());
    assert_eq!(h.store().loan(&cured).unwrap().unwrap().state, LoanState::Cured);
    assert_eq!(h.store().loan(&closed).unwrap().unwrap().state, LoanState::Closed);
}

#[tokio::test]
async fn an_invalid_mobile_is_recorded_with_the_field_error_and_the_rest_still_sync() {
    let h = Harness::new(30, 40).await;
    let overdue = overdue_loan_ids(&h.sb);
    let bad = overdue[0].clone();
    {
        let mut s = h.sb.state();
        let lead_id = s
            .overdue_programs(1)
            .into_iter()
            .find(|p| p["ref_id"] == bad.as_str())
            .unwrap()["lead_id"]
            .as_str()
            .unwrap()
            .to_string();
        s.leads.get_mut(&lead_id).unwrap()["mobile"] = json!("83849879");
    }
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1, "a rejected loan needs attention");
    assert_eq!(report.place_loans.rejected, 1);
    assert_eq!(report.place_loans.placed as usize, overdue.len() - 1);

    let row = h.store().loan(&bad).unwrap().unwrap();
    assert_eq!(row.state, LoanState::Rejected);
    let err: Value = serde_json::from_str(row.last_error.as_deref().unwrap()).unwrap();
    assert_eq!(err["applicant_contact_number"], "Invalid Mobile numbers, [83849879]");
    assert!(!h.sb.state().cg_loans.contains_key(&bad));
    assert!(
        !h.sb
            .requests()
            .iter()
            .any(|r| r.path == format!("/recovery/loan/{bad}")),
        "refused by the preflight, with the documented message, before any request: {:?}",
        h.sb.requests()
            .iter()
            .filter(|r| r.path.ends_with(&bad))
            .collect::<Vec<_>>()
    );
    for id in &overdue[1..] {
        assert_eq!(h.store().loan(id).unwrap().unwrap().state, LoanState::Placed);
    }

    // The same refused payload is not sent again; the run still says attention is needed.
    let before = h.sb.requests().len();
    assert_eq!(h.once().await.exit_code(), 1);
    assert!(writes(&h.requests_since(before)).is_empty());
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_not_counted_as_failure() {
    let h = Harness::new(12, 50).await;
    h.sb.fail_next(Api::Credgenics, 2, 429, Some(1));
    h.sb.fail_next(Api::Crego, 1, 429, Some(1));
    let started = std::time::Instant::now();
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.place_loans.failed, 0);
    assert_eq!(report.place_loans.placed as usize, overdue_loan_ids(&h.sb).len());
    let limited = h.sb.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 3);
    assert!(report.requests["credgenics"]["retries"].as_u64().unwrap() >= 2);
    // Retry-After: 1 was honoured (not the 200 ms backoff floor).
    assert!(started.elapsed() >= std::time::Duration::from_millis(950));
}

#[tokio::test]
async fn a_401_from_credgenics_stops_the_run_with_a_clear_message() {
    let mut h = Harness::new(12, 50).await;
    h.edit("auth_token", "\"not-the-token\"");
    let report = h.once().await;
    assert_eq!(
        report.exit_code(),
        3,
        "a refused credential: the run could not complete"
    );
    let err = report.error.expect("the run stopped");
    assert!(err.contains("credgenics refused the credential (HTTP 401)"), "{err}");
    assert!(err.contains("credgenics.auth_token"), "{err}");
    assert!(h.sb.state().cg_loans.is_empty());
    // Nothing is left in doubt or falsely rejected by a refused credential.
    let counts = h.store().loan_counts().unwrap();
    assert!(counts.is_empty(), "{counts:?}");
}

#[tokio::test]
async fn a_401_from_crego_stops_the_run_before_anything_is_sent() {
    let mut h = Harness::new(12, 50).await;
    h.edit("bearer_token", "\"expired\"");
    let report = h.once().await;
    assert_eq!(
        report.exit_code(),
        3,
        "a refused credential: the run could not complete"
    );
    let err = report.error.unwrap();
    assert!(
        err.contains("crego refused the credential") && err.contains("crego.bearer_token"),
        "{err}"
    );
    assert_eq!(h.sb.requests().len(), 1, "stopped at the first refusal");
}

#[tokio::test]
async fn an_upload_in_doubt_is_looked_up_before_it_is_sent_again() {
    let h = Harness::new(12, 50).await;
    let overdue = overdue_loan_ids(&h.sb);
    // Every upload of the first run "fails" with a 502: the fake did not store the loan, but the
    // daemon cannot know that.
    h.sb.fail_next(Api::Credgenics, overdue.len(), 502, None);
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1, "in-doubt uploads need attention");
    assert_eq!(report.place_loans.in_doubt as usize, overdue.len());
    let writes_first = writes(&h.sb.requests()).len();
    assert_eq!(
        writes_first,
        overdue.len(),
        "a non-idempotent upload is not blindly retried"
    );

    // Next run: a GET per in-doubt loan (404), then exactly one upload each.
    let before = h.sb.requests().len();
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(report.place_loans.resolved as usize, overdue.len());
    let reqs = h.requests_since(before);
    let gets = reqs
        .iter()
        .filter(|r| r.api == "credgenics" && r.method == "GET")
        .count();
    assert_eq!(gets, overdue.len());
    assert_eq!(posts_by_loan(&writes(&reqs)), overdue);
    assert_eq!(h.sb.state().cg_loans.len(), overdue.len());
}

#[tokio::test]
async fn a_loan_the_api_rejects_is_recorded_with_its_answer_and_the_rest_still_sync() {
    let h = Harness::new(20, 50).await;
    let overdue = overdue_loan_ids(&h.sb);
    let bad = overdue[0].clone();
    h.sb.fail_next_on(
        Api::Credgenics,
        Some(&format!("POST /recovery/loan/{bad}")),
        1,
        400,
        None,
    );
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.place_loans.rejected, 1);
    assert_eq!(report.place_loans.placed as usize, overdue.len() - 1);
    let row = h.store().loan(&bad).unwrap().unwrap();
    assert_eq!(row.state, LoanState::Rejected);
    assert!(row.last_error.unwrap().starts_with("HTTP 400"));
    let posts =
        h.sb.requests()
            .iter()
            .filter(|r| r.path == format!("/recovery/loan/{bad}"))
            .count();
    assert_eq!(posts, 1, "a 400 is never retried");
}

#[tokio::test]
async fn a_mapping_that_fails_for_one_loan_rejects_that_loan_and_the_rest_sync() {
    let mut h = Harness::new(20, 50).await;
    let overdue = overdue_loan_ids(&h.sb);
    let bad = overdue[0].clone();
    let lead_ref = {
        let s = h.sb.state();
        let p = s
            .overdue_programs(1)
            .into_iter()
            .find(|p| p["ref_id"] == bad.as_str())
            .unwrap();
        s.leads[p["lead_id"].as_str().unwrap()]["ref_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let expr = format!("if .lead.ref_id == \"{lead_ref}\" then error(\"no name on file\") else .lead.name end");
    h.edit_append(&format!("[mapping.loan]\napplicant_name = '{expr}'\n"));
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1);
    assert_eq!(report.place_loans.rejected, 1);
    assert_eq!(report.place_loans.placed as usize, overdue.len() - 1);
    let row = h.store().loan(&bad).unwrap().unwrap();
    let err = row.last_error.unwrap();
    assert!(
        err.contains("`applicant_name`") && err.contains(&expr) && err.contains("no name on file"),
        "{err}"
    );
    assert!(err.contains("input: lead"), "{err}");
    assert!(
        !h.sb
            .requests()
            .iter()
            .any(|r| r.path == format!("/recovery/loan/{bad}"))
    );
}

/// Regression (benchmark finding): a quiet book re-read the whole overlap window on every cycle.
/// The window is now re-read only as far as items could have been invisible to the last complete
/// read; a line committed late inside it is still picked up, and a quiet book costs one list
/// request per stream.
#[tokio::test]
async fn overlap_rereads_only_what_the_last_read_could_have_missed() {
    let mut h = Harness::new(30, 0).await;
    h.edit_append("[sync]\ncursor_overlap_secs = 5\n");
    assert_eq!(h.once().await.exit_code(), 0);
    // A change just now: the cursor is recent.
    let bps: Vec<String> = {
        let s = h.sb.state();
        s.programs
            .values()
            .flatten()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    h.sb.state().update_line(&bps[1], |ld| ld["remarks"] = json!("touched"));
    assert_eq!(h.once().await.exit_code(), 0);
    let cursor = h.store().cursor("line_details").unwrap().unwrap();

    // A line made overdue by a transaction that committed late: its updated_at lies a second
    // behind the cursor, inside the window of what the last read could not have seen.
    let late = {
        let mut s = h.sb.state();
        let bp = bps[0].clone();
        let (lead, i) = s.find_program(&bp).unwrap();
        let ld = &mut s.programs.get_mut(&lead).unwrap()[i]["line_detail"];
        ld["dpd"] = json!(12);
        ld["due_amount"] = json!(1500);
        ld["total_due_principal"] = json!(1500);
        ld["updated_at"] = json!(cursor - 1.0);
        s.reindex();
        bp
    };
    assert_eq!(h.once().await.place_loans.placed, 1, "the late line is read");
    assert!(h.store().loan_by_program(&late).unwrap().is_some());

    // Quiet from here: once a read has started a whole window after the last change, the next
    // read starts at the cursor: one list request per stream, no write anywhere.
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    h.once().await;
    let from = h.sb.requests().len();
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0);
    let reqs = h.requests_since(from);
    let lists: Vec<String> = reqs.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        lists,
        ["GET /v1/lms/line-details/", "GET /v1/lms/records/"],
        "one list request per stream"
    );
    assert!(writes(&reqs).is_empty());
    assert!(
        report.place_loans.scanned <= 1,
        "the read starts at the cursor, not a window before it: {:?}",
        report.place_loans
    );
}
