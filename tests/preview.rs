//! `preview --lead`: live data mapped, preflight per field, the difference from what was last
//! sent — and nothing written.

mod common;
use common::ExitCode;

use common::{Harness, binary, writes};
use serde_json::json;

async fn preview(h: &Harness, lead: &str) -> (i32, String) {
    let config = h.write_config();
    let out = tokio::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "preview", "--lead", lead])
        .env("RUST_LOG", "error")
        .env_remove("CCSYNC_NOW")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn first_overdue(h: &Harness) -> (String, String) {
    let s = h.sb.state();
    let p = &s.overdue_programs(1)[0];
    (
        p["lead_id"].as_str().unwrap().to_string(),
        p["id"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_of_a_seed_lead_matches_the_snapshot_and_writes_nothing() {
    let h = Harness::new(10, 40).await;
    let (lead, _) = first_overdue(&h);
    let (code, out) = preview(&h, &lead).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        h.sb.requests().iter().all(|r| r.method == "GET"),
        "nothing written at the partners"
    );
    assert!(!h.state.exists(), "no state file created");
    // Dates and epoch times move with the clock; everything else is the seed's.
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d{1,2}-\d{2}", "[date]"),
        (r"\b\d{10}(\.\d+)?\b", "[epoch]"),
    ]}, {
        insta::assert_snapshot!("preview_seed_lead", out);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_shows_the_keys_the_next_run_would_patch_and_a_failing_field() {
    let h = Harness::new(10, 40).await;
    let (lead, bp) = first_overdue(&h);
    assert_eq!(h.once().await.exit_code(), 0);
    h.close_store();
    let (_, out) = preview(&h, &lead).await;
    assert!(out.contains("unchanged: no call"), "{out}");

    h.sb.state().update_line(&bp, |ld| {
        ld["total_due_penal"] = json!(ld["total_due_penal"].as_f64().unwrap() + 250.0)
    });
    h.sb.state().leads.get_mut(&lead).unwrap()["mobile"] = json!("12345");
    let before = h.sb.requests().len();
    let (code, out) = preview(&h, &lead).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("changed keys (the next run PATCHes them)") && out.contains("\"late_fee\""),
        "{out}"
    );
    assert!(out.contains("preflight: FAILS"), "{out}");
    assert!(
        out.contains("applicant_contact_number") && out.contains("FAIL: Invalid Mobile numbers, [12345]"),
        "{out}"
    );
    assert!(writes(&h.requests_since(before)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_of_a_record_shows_the_payment_and_the_ledger() {
    let h = Harness::new(10, 40).await;
    let (_, bp) = first_overdue(&h);
    assert_eq!(h.once().await.exit_code(), 0);
    h.close_store();
    let rec = h.sb.repayment(&bp, rust_decimal::Decimal::new(12345, 2), "UTR-PREVIEW");
    let id = rec["id"].as_str().unwrap().to_string();
    let config = h.write_config();
    let run = |id: String| {
        let config = config.clone();
        async move {
            let out = tokio::process::Command::new(binary())
                .args(["--config", config.to_str().unwrap(), "preview", "--record", &id])
                .env("RUST_LOG", "error")
                .output()
                .await
                .unwrap();
            (
                out.status.code().unwrap(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };
    let (code, out) = run(id.clone()).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("payload (PATCH /payments/") && out.contains("\"amount_recovered\": 123.45"),
        "{out}"
    );
    assert!(
        out.contains("preflight: passes") && out.contains("ledger: not yet"),
        "{out}"
    );
    assert!(
        !h.sb
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/recovery/payments/")),
        "preview sent nothing"
    );
    assert_eq!(h.once().await.exit_code(), 0);
    h.close_store();
    let (_, out) = run(id).await;
    assert!(out.contains("done"), "{out}");
}
