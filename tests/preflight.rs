//! Each documented rule, checked before any request: a bad value is refused naming the field, a
//! good one passes. The documented Upload Loan example is the base of every case.

use crego_credgenics_sync::flows::recoveries::check_record;
use crego_credgenics_sync::partners::credgenics::rules::{check_payment, check_update, check_upload};
use serde_json::{Value, json};

fn example() -> Value {
    serde_json::from_str(include_str!("../fixtures/credgenics_upload_loan.json")).unwrap()
}

/// (field path as reported, JSON pointer to set, bad value, good value)
const UPLOAD_CASES: &[(&str, &str, &str, &str)] = &[
    ("applicant_dob", "/applicant_dob", r#""23/03/1992""#, r#""1992-03-23""#),
    ("loan_end_date", "/loan_end_date", r#""2019-02-30""#, r#""2019-02-28""#),
    (
        "defaults.0.allocation_month",
        "/defaults/0/allocation_month",
        r#""2021-07-01""#,
        r#""2021-7-01""#,
    ),
    (
        "defaults.0.date_of_default",
        "/defaults/0/date_of_default",
        r#""07-04-2019""#,
        r#""2019-04-07""#,
    ),
    ("applicant_gender", "/applicant_gender", r#""M""#, r#""Female""#),
    (
        "co_applicant.0.co_applicant_gender",
        "/co_applicant/0/co_applicant_gender",
        r#""X""#,
        r#""Other""#,
    ),
    ("applicant_language", "/applicant_language", r#""klingon""#, r#""ta""#),
    ("security_type", "/security_type", r#""Pledged""#, r#""Unsecured""#),
    (
        "applicant_contact_number",
        "/applicant_contact_number",
        r#""98052659""#,
        r#""9805265926,8802913432""#,
    ),
    (
        "references.0.contact_number",
        "/references/0/contact_number",
        r#""0123456789""#,
        r#""8802913432""#,
    ),
    (
        "applicant_email",
        "/applicant_email",
        r#""shriram.gmail.com""#,
        r#""a@b.in,c@d.co""#,
    ),
    ("total_loan_amount", "/total_loan_amount", "-1", "0"),
    (
        "defaults.0.total_claim_amount",
        "/defaults/0/total_claim_amount",
        r#""113000""#,
        "113000.5",
    ),
    ("applicant_cibil_score", "/applicant_cibil_score", "820.5", "820"),
    ("tenure_finished", "/tenure_finished", r#""yes""#, "true"),
    ("loan_id", "/loan_id", r#""999""#, r#""283921""#),
    ("applicant_name", "/applicant_name", "null", r#""Shri Ram""#),
    ("loan_type", "/loan_type", r#""""#, r#""Personal Loan""#),
    (
        "applicant_occupation",
        "/applicant_occupation",
        r#"{"job": true}"#,
        r#""Job""#,
    ),
    ("tags", "/tags", r#"["tag1", "tag2"]"#, r#""tag1,tag2""#),
];

#[test]
fn every_upload_rule_refuses_a_bad_value_by_field_and_passes_a_good_one() {
    for (field, pointer, bad, good) in UPLOAD_CASES {
        let mut v = example();
        *v.pointer_mut(pointer).unwrap() = serde_json::from_str(bad).unwrap();
        let errors = crego_credgenics_sync::partners::credgenics::flatten_errors(&check_upload("283921", &v));
        assert!(errors.contains_key(*field), "{field} = {bad} should fail: {errors:?}");
        assert_eq!(errors.len(), 1, "only {field} fails: {errors:?}");
        *v.pointer_mut(pointer).unwrap() = serde_json::from_str(good).unwrap();
        assert!(check_upload("283921", &v).is_empty(), "{field} = {good} should pass");
    }
}

#[test]
fn payment_rules() {
    let good = json!({"final_status": "Closed", "amount_recovered": 1000, "payment_method": "Cheque",
        "closure_with": "NOC", "recovery_date": "2022-01-08", "payment_received_date": "2022-01-12"});
    assert!(check_payment(&good).is_empty());
    for (field, bad) in [
        ("final_status", json!("Done")),
        ("payment_method", json!("Bitcoin")),
        ("closure_with", json!("Waiver")),
        ("amount_recovered", json!(-5)),
        ("payment_received_date", json!("12/01/2022")),
        ("recovery_date", json!("yesterday")),
    ] {
        let mut v = good.clone();
        v[field] = bad.clone();
        let e = check_payment(&v);
        assert!(e.contains_key(field) && e.len() == 1, "{field} = {bad}: {e:?}");
    }
    for required in ["final_status", "amount_recovered", "payment_method"] {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(required);
        assert_eq!(check_payment(&v)[required], "This field is required");
    }
    assert!(check_update(&json!({"applicant_email": "nope"})).contains_key("applicant_email"));
}

#[test]
fn record_rules() {
    let good = json!({"type": "repayment", "account": "acc-1", "amount": 10.5, "date": 1662402524.8, "utr": "U1"});
    assert_eq!(check_record(good.as_object().unwrap()), None);
    for (field, bad) in [
        ("type", json!("")),
        ("account", json!(null)),
        ("amount", json!(0)),
        ("date", json!("2022-01-01")),
        ("utr", json!(" ")),
    ] {
        let mut v = good.clone();
        v[field] = bad;
        let reason = check_record(v.as_object().unwrap()).unwrap();
        assert!(reason.contains(field), "{field}: {reason}");
    }
}
