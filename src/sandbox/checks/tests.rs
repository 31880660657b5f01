//! The fake Credgenics' validation against the document's own examples and its tables.

use super::*;
use serde_json::json;

/// The Upload Loan example of the document (its `curl` body, which is valid JSON).
fn upload_example() -> Value {
    serde_json::from_str(include_str!("../../../fixtures/credgenics_upload_loan.json")).unwrap()
}

/// The Update Payment example of the document.
fn payment_example() -> Value {
    json!({
        "final_status": "Closed",
        "amount_recovered": 1000,
        "recovery_date": "2022-01-08",
        "recovery_method": "Communications",
        "recovered_by": "shriram@gmail.com",
        "payment_method": "Cheque",
        "closure_with": "NOC",
        "payment_mode": "cash",
        "payment_reference_number": "RFN123456",
        "payment_received_date" : "2022-01-12"
    })
}

/// The "Recovery Amount Bifurcation" example.
fn bifurcation_example() -> Value {
    json!({
        "final_status": "Closed",
        "amount_recovered": 2200,
        "date_of_default": "2022-05-07",
        "recovery_date": "2022-06-02 09:30:00",
        "recovery_method": "Field collection",
        "payment_method": "Cash",
        "recovered_expected_emi": 2000,
        "recovered_late_fee": 100,
        "recovered_penalty": 100
    })
}

#[test]
fn the_documented_examples_pass() {
    let e = upload_errors("283921", &upload_example());
    assert!(e.is_empty(), "{e:?}");
    let e = update_errors("283921", &json!({"total_loan_amount": 60000}));
    assert!(e.is_empty(), "{e:?}");
    for body in [payment_example(), bifurcation_example()] {
        let e = payment_errors(&body, Some("2021-2-01"));
        assert!(e.is_empty(), "{e:?}");
    }
}

#[test]
fn the_documented_failure_example_fails_on_the_same_fields() {
    let mut v = upload_example();
    v["applicant_contact_number"] = json!("83849879");
    v["applicant_dob"] = json!("23-03-1992");
    v["applicant_language"] = json!("feger");
    v["co_applicant"][0]["co_applicant_email"] = json!("tempgmail.com");
    v["defaults"][0]["default_emi_number"] = json!("twelve");
    let e = Value::Object(upload_errors("283921", &v));
    assert_eq!(e["applicant_contact_number"], "Invalid Mobile numbers, [83849879]");
    assert_eq!(e["applicant_dob"], "Value must be of type date with format YYYY-MM-DD");
    assert_eq!(e["applicant_language"], "Invalid languages, [feger]");
    assert_eq!(
        e["co_applicant"]["0"]["co_applicant_email"],
        "Invalid Emails, [tempgmail.com]"
    );
    assert_eq!(e["defaults"]["0"]["default_emi_number"], "Value must be a number");
    assert_eq!(e.as_object().unwrap().len(), 5, "{e}");
}

#[test]
fn a_zero_padded_allocation_month_fails() {
    let mut v = upload_example();
    v["defaults"][0]["allocation_month"] = json!("2021-07-01");
    let e = Value::Object(upload_errors("283921", &v));
    assert!(
        e["defaults"]["0"]["allocation_month"]
            .as_str()
            .unwrap()
            .contains("[2021-07-01]"),
        "{e}"
    );
    let e = payment_errors(&payment_example(), Some("2021-02-01"));
    assert_eq!(e.keys().collect::<Vec<_>>(), ["allocation_month"], "{e:?}");
    for good in ["2021-7-01", "2021-12-01", "2022-10-01"] {
        assert!(is_month(good), "{good}");
    }
    for bad in [
        "2021-07-01",
        "2021-7-1",
        "2021-13-01",
        "2021-0-01",
        "21-7-01",
        "2021-7-02",
        "2021-7-01-01",
    ] {
        assert!(!is_month(bad), "{bad}");
    }
}

#[test]
fn a_missing_required_field_fails() {
    for key in ["final_status", "amount_recovered", "payment_method"] {
        let mut body = payment_example();
        body.as_object_mut().unwrap().remove(key);
        let e = payment_errors(&body, Some("2021-2-01"));
        assert_eq!(e.get(key), Some(&json!(REQUIRED)), "{key}: {e:?}");
        assert_eq!(e.len(), 1, "{e:?}");
        let mut body = payment_example();
        body[key] = json!("");
        assert!(
            payment_errors(&body, Some("2021-2-01")).contains_key(key),
            "{key} empty"
        );
    }
    let e = payment_errors(&payment_example(), None);
    assert_eq!(e.get("allocation_month"), Some(&json!(REQUIRED)));
    let mut v = upload_example();
    v["defaults"][0].as_object_mut().unwrap().remove("allocation_month");
    let e = Value::Object(upload_errors("283921", &v));
    assert_eq!(e["defaults"]["0"]["allocation_month"], REQUIRED);
}

#[test]
fn amounts_are_numbers_and_a_recovery_is_above_zero() {
    let with = |v: Value| {
        let mut body = payment_example();
        body["amount_recovered"] = v;
        payment_errors(&body, Some("2021-2-01"))
    };
    assert!(with(json!(1000.55)).is_empty(), "decimals pass");
    for bad in [json!("1000"), json!(0), json!(-5), json!(true)] {
        let e = with(bad.clone());
        assert!(e.contains_key("amount_recovered"), "{bad}: {e:?}");
    }
    let e = upload_errors("283921", &json!({"total_loan_amount": "50000"}));
    assert_eq!(e["total_loan_amount"], "Value must be a number");
}

#[test]
fn a_wrong_option_fails() {
    for (key, bad) in [
        ("payment_method", "UPI"),
        ("closure_with", "Waiver"),
        ("recovery_method", "Magic"),
    ] {
        let mut body = payment_example();
        body[key] = json!(bad);
        let e = payment_errors(&body, Some("2021-2-01"));
        assert_eq!(e.keys().collect::<Vec<_>>(), [key], "{e:?}");
        assert!(e[key].as_str().unwrap().contains(bad), "{e:?}");
    }
    let mut body = payment_example();
    body["final_status"] = json!("Settled");
    assert!(payment_errors(&body, Some("2021-2-01")).is_empty(), "any final_status");
    let e = update_errors(
        "283921",
        &json!({"security_type": "Pledged", "applicant_gender": "Other"}),
    );
    assert!(
        e.contains_key("security_type") && e.contains_key("applicant_gender"),
        "{e:?}"
    );
    let e = update_errors(
        "283921",
        &json!({"applicant_address": [{"applicant_address_type": "Farm"}]}),
    );
    assert!(
        e["applicant_address"]["0"]["applicant_address_type"].is_string(),
        "{e:?}"
    );
}

#[test]
fn types_and_formats() {
    let e = update_errors(
        "283921",
        &json!({
            "loan_id": "999",
            "loan_type": 7,
            "tenure_finished": "yes",
            "loan_tenure": 12.5,
            "applicant_contact_number": "9805265926, 98052659",
            "agent_email": "a@b.in,c@d",
            "client_loan_sanction_date": "2021-02-30",
            "defaults": "2021-7-01",
        }),
    );
    for key in [
        "loan_id",
        "loan_type",
        "tenure_finished",
        "loan_tenure",
        "applicant_contact_number",
        "agent_email",
        "client_loan_sanction_date",
        "defaults",
    ] {
        assert!(e.contains_key(key), "{key}: {e:?}");
    }
    assert_eq!(e["applicant_contact_number"], "Invalid Mobile numbers, [98052659]");
    assert_eq!(e["agent_email"], "Invalid Emails, [c@d]");
    let mut body = payment_example();
    body["recovery_date"] = json!("2022-01-08 25:00:00");
    assert!(payment_errors(&body, Some("2021-2-01")).contains_key("recovery_date"));
    body["recovery_date"] = json!("2020-09-12 00:59:51.418571");
    assert!(payment_errors(&body, Some("2021-2-01")).is_empty());
    assert!(!payment_errors(&json!([1]), Some("2021-2-01")).is_empty());
}
