//! The documented examples of `shared/api-docs`, kept verbatim in `fixtures/`, as fixtures.

mod common;

use common::Harness;
use crego_credgenics_sync::mapping::{DEFAULT_DEFAULT, DEFAULT_LOAN, EvalEnv, FieldSet};
use crego_credgenics_sync::money;
use crego_credgenics_sync::partners::credgenics::rules;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_documented_programs_example_maps_to_a_valid_upload() {
    let programs = fixture("crego_programs_response.json");
    let program = &programs[0];
    let lead = json!({"id": program["lead_id"], "ref_id": "LD1", "name": "Shri Ram", "mobile": "+91 98052 65926",
        "email": "shriram@gmail.com"});
    let mut line = program["line_detail"].clone();
    line["dpd"] = json!(45);
    line["due_amount"] = json!(13442.5);
    let input = json!({"lead": lead, "program": program, "line_detail": line, "allocation_month": "2026-11-01",
        "today": "2026-11-21", "today_epoch": 1795219200_i64, "min_dpd": 1});
    let env = EvalEnv { tz_offset_secs: 19800 };
    let loan = FieldSet::build(DEFAULT_LOAN, &Default::default())
        .unwrap()
        .eval(&input, &env)
        .unwrap();
    let default = FieldSet::build(DEFAULT_DEFAULT, &Default::default())
        .unwrap()
        .eval(&input, &env)
        .unwrap();
    assert_eq!(
        loan["loan_id"], "CL4ZWR4A",
        "the borrower-program ref_id is the loan id"
    );
    assert_eq!(loan["applicant_contact_number"], "9805265926");
    assert_eq!(loan["product_type"], "Distributor Financing");
    // line_activation_date 1716451159.864 is 2024-05-23 in IST
    assert_eq!(loan["client_loan_sanction_date"], "2024-05-23");
    assert_eq!(default["date_of_default"], "2026-10-07", "45 days before 21 November");
    assert_eq!(default["allocation_dpd_bracket"], "31-60");
    assert_eq!(default["total_claim_amount"].to_string(), "13442.5");
    let mut payload = Value::Object(loan);
    payload["defaults"] = json!([default]);
    let errors = rules::check_upload("CL4ZWR4A", &payload);
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn the_sandbox_accepts_the_documented_upload_example_and_refuses_it_broken() {
    let h = Harness::new(1, 0).await;
    let client = reqwest::Client::new();
    let example = fixture("credgenics_upload_loan.json");
    let post = |body: Value| {
        client
            .post(format!("{}/loan/283921", h.sb.credgenics_url()))
            .header("authenticationtoken", &h.sb.config().credgenics_token)
            .json(&body)
            .send()
    };
    let resp = post(example.clone()).await.unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"message": "Data uploaded successfully"})
    );

    let mut broken = example;
    broken["applicant_contact_number"] = json!("83849879");
    let resp = post(broken).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Data Validation Failed");
    assert_eq!(
        body["output"]["errors"]["applicant_contact_number"],
        "Invalid Mobile numbers, [83849879]"
    );

    let resp = client
        .get(format!("{}/loan/283921", h.sb.credgenics_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "no token, no answer");
}

#[test]
fn the_documented_record_keeps_its_amount_exact() {
    let record = fixture("crego_record.json");
    assert_eq!(record["type"], "repayment");
    assert_eq!(money::from_json(&record["amount"]).unwrap().to_string(), "13442.0");
    assert_eq!(
        record["date"].to_string(),
        "1662402524.802948",
        "epoch seconds stay as written"
    );
}
