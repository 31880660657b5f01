//! The field rules of the Credgenics API document, as one table: which keys are dates, mobile
//! numbers, e-mails, languages, genders, amounts, option lists and nested lists, and what is
//! required. The sandbox answers with these rules (in the documented 400 body shape); later the
//! daemon's own preflight uses the same table.
//!
//! Empty strings and nulls pass for optional keys: the documented examples carry both.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Date,
    DateTime,
    Mobile,
    Email,
    Language,
    Gender,
    Amount,
    Integer,
    Bool,
    AllocationMonth,
    Options(&'static [&'static str]),
    List,
    Text,
}

const SECURITY_TYPES: &[&str] = &["Secured", "Secured Movable", "Secured Immovable", "Unsecured"];
const PAYMENT_METHODS: &[&str] = &[
    "Online",
    "Cash",
    "Cheque",
    "Bank Account Transfer",
    "Application",
    "Payment Link",
];
const CLOSURE_WITH: &[&str] = &["NOC", "Settlement"];
/// The dispositions documented for a payment: the main document's "e.g. Closed, Partially
/// Recovered etc." and the older one's "Choices - Partially Recovered, Closed". Others a tenant
/// accepts are config (`credgenics.extra_final_statuses`).
pub const FINAL_STATUS: &[&str] = &["Closed", "Partially Recovered"];
const ADDRESS_TYPES: &[&str] = &["Home", "Business", "Office"];
const GENDERS: &[&str] = &["Male", "Female", "Non-Binary", "Other"];
/// ISO 639-1 codes and names of the documented languages.
const LANGUAGES: &[&str] = &[
    "en",
    "hi",
    "ta",
    "pa",
    "te",
    "mr",
    "gu",
    "kn",
    "bn",
    "ml",
    "or",
    "as",
    "English",
    "Hindi",
    "Tamil",
    "Punjabi",
    "Telugu",
    "Marathi",
    "Gujarati",
    "Kannada",
    "Bengali",
    "Malayalam",
    "Oriya",
    "Assamese",
];

fn kind_of(key: &str) -> Option<Kind> {
    use Kind::*;
    Some(match key {
        "applicant_dob"
        | "client_loan_sanction_date"
        | "loan_end_date"
        | "notice_date"
        | "document_date"
        | "document_dishonour_date"
        | "document_bounce_memo_date"
        | "document_bounce_memo_return_date"
        | "date_of_default"
        | "co_applicant_dob"
        | "payment_received_date" => Date,
        "recovery_date" => DateTime,
        "applicant_contact_number"
        | "co_applicant_contact_number"
        | "contact_number"
        | "loan_regional_manager_contact_number" => Mobile,
        "applicant_email" | "co_applicant_email" | "agent_email" | "loan_regional_manager_contact_email" => Email,
        "applicant_language" | "co_applicant_language" => Language,
        "applicant_gender" | "co_applicant_gender" | "reference_gender" => Gender,
        "total_loan_amount"
        | "applicant_monthly_income"
        | "emi_amount"
        | "interest_on_loan"
        | "document_amount"
        | "document_bounce_charges"
        | "total_claim_amount"
        | "late_fee"
        | "expected_emi"
        | "settlement_amount"
        | "client_amount_recovered"
        | "principal_outstanding_amount"
        | "expected_emi_interest_amount"
        | "expected_emi_principal_amount"
        | "other_penalty"
        | "amount_recovered" => Amount,
        "applicant_cibil_score"
        | "loan_tenure"
        | "default_emi_number"
        | "allocation_dpd_value"
        | "payment_link_expiry"
        | "applicant_pincode"
        | "co_applicant_pincode"
        | "reference_pincode"
        | "document_signature_pincode" => Integer,
        "tenure_finished" | "backed_by_security" | "backed_by_surety" => Bool,
        "allocation_month" => AllocationMonth,
        "security_type" => Options(SECURITY_TYPES),
        "payment_method" => Options(PAYMENT_METHODS),
        "closure_with" => Options(CLOSURE_WITH),
        "final_status" => Options(FINAL_STATUS),
        "applicant_address_type" | "co_applicant_address_type" => Options(ADDRESS_TYPES),
        "loan_id"
        | "loan_type"
        | "applicant_name"
        | "client_customer_id"
        | "product_type"
        | "tags"
        | "applicant_pan_number"
        | "applicant_aadhar_number"
        | "applicant_occupation"
        | "business_name"
        | "loan_nbfc_name"
        | "loan_nbfc_cin"
        | "credit_bank_name"
        | "credit_account_holder_name"
        | "payment_reference_number"
        | "payment_mode"
        | "recovered_by"
        | "recovery_method"
        | "allocation_dpd_bracket"
        | "co_applicant_name"
        | "name"
        | "relation_with_applicant" => Text,
        "document_details"
        | "applicant_address"
        | "defaults"
        | "co_applicant"
        | "references"
        | "co_applicant_address"
        | "reference_address" => List,
        _ => return None,
    })
}

/// Keys the Upload Loan API requires.
pub const UPLOAD_REQUIRED: &[&str] = &["loan_id", "loan_type", "applicant_name", "total_loan_amount"];
/// Keys the Update Payment API requires.
pub const PAYMENT_REQUIRED: &[&str] = &["final_status", "amount_recovered", "payment_method"];

/// Errors of an Upload Loan body, in the documented nested shape; empty when valid.
pub fn check_upload(path_loan_id: &str, body: &Value) -> Map<String, Value> {
    let Some(obj) = body.as_object() else {
        return single("body", "Request body must be a JSON object");
    };
    let mut errors = check_object(obj);
    require(obj, UPLOAD_REQUIRED, &mut errors);
    if let Some(id) = obj.get("loan_id").and_then(Value::as_str)
        && id != path_loan_id
        && !errors.contains_key("loan_id")
    {
        errors.insert(
            "loan_id".into(),
            format!("loan_id {id} does not match the path loan_id {path_loan_id}").into(),
        );
    }
    if let Some(Value::Array(defaults)) = obj.get("defaults") {
        for (i, d) in defaults.iter().enumerate() {
            if d.get("allocation_month").is_none_or(Value::is_null) {
                nested_insert(&mut errors, "defaults", i, "allocation_month", "This field is required");
            }
        }
    }
    errors
}

/// Errors of an Update Loan body (only the keys given are checked).
pub fn check_update(body: &Value) -> Map<String, Value> {
    match body.as_object() {
        Some(obj) if obj.is_empty() => single("body", "Nothing to update"),
        Some(obj) => check_object(obj),
        None => single("body", "Request body must be a JSON object"),
    }
}

/// Errors of an Update Payment body.
pub fn check_payment(body: &Value) -> Map<String, Value> {
    let Some(obj) = body.as_object() else {
        return single("body", "Request body must be a JSON object");
    };
    let mut errors = check_object(obj);
    require(obj, PAYMENT_REQUIRED, &mut errors);
    errors
}

fn single(k: &str, msg: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(k.into(), msg.into());
    m
}

fn require(obj: &Map<String, Value>, keys: &[&str], errors: &mut Map<String, Value>) {
    for k in keys {
        let missing = match obj.get(*k) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            _ => false,
        };
        if missing && !errors.contains_key(*k) {
            errors.insert((*k).into(), "This field is required".into());
        }
    }
}

fn nested_insert(errors: &mut Map<String, Value>, list: &str, i: usize, key: &str, msg: &str) {
    let entry = errors
        .entry(list.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(by_index) = entry {
        let item = by_index
            .entry(i.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(fields) = item {
            fields.insert(key.into(), msg.into());
        }
    }
}

fn check_object(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut errors = Map::new();
    for (k, v) in obj {
        if let Some(e) = check_value(k, v) {
            errors.insert(k.clone(), e);
        }
    }
    errors
}

fn check_value(key: &str, v: &Value) -> Option<Value> {
    let kind = kind_of(key)?;
    if v.is_null() || v.as_str().is_some_and(|s| s.is_empty()) {
        return None;
    }
    let msg = |s: String| Some(Value::String(s));
    match kind {
        Kind::List => match v {
            Value::Array(items) => {
                let mut by_index = Map::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_object() {
                        Some(o) => {
                            let e = check_object(o);
                            if !e.is_empty() {
                                by_index.insert(i.to_string(), Value::Object(e));
                            }
                        }
                        None => {
                            by_index.insert(i.to_string(), "Value must be an object".into());
                        }
                    }
                }
                (!by_index.is_empty()).then_some(Value::Object(by_index))
            }
            _ => msg("Value must be a list".into()),
        },
        Kind::Date => match v.as_str() {
            Some(s) if is_date(s) => None,
            _ => msg("Value must be of type date with format YYYY-MM-DD".into()),
        },
        Kind::DateTime => match v.as_str() {
            Some(s) if is_date(s) || is_datetime(s) => None,
            _ => msg("Value must be of type datetime with format YYYY-MM-DD or YYYY-MM-DD HH:MM:SS".into()),
        },
        Kind::AllocationMonth => match v.as_str() {
            Some(s) if is_allocation_month(s) => None,
            _ => msg(format!(
                "Invalid allocation month, [{}]: format is YYYY-M-01",
                display(v)
            )),
        },
        Kind::Mobile => {
            let bad = list_items(v).into_iter().filter(|m| !is_mobile(m)).collect::<Vec<_>>();
            (!bad.is_empty()).then(|| Value::String(format!("Invalid Mobile numbers, [{}]", bad.join(", "))))
        }
        Kind::Email => {
            let bad = list_items(v).into_iter().filter(|m| !is_email(m)).collect::<Vec<_>>();
            (!bad.is_empty()).then(|| Value::String(format!("Invalid Emails, [{}]", bad.join(", "))))
        }
        Kind::Language => {
            let s = display(v);
            (!LANGUAGES.iter().any(|l| l.eq_ignore_ascii_case(&s)))
                .then(|| Value::String(format!("Invalid languages, [{s}]")))
        }
        Kind::Gender | Kind::Options(_) => {
            let options = if let Kind::Options(o) = kind { o } else { GENDERS };
            let s = display(v);
            (!options.iter().any(|o| o.eq_ignore_ascii_case(&s)))
                .then(|| Value::String(format!("Invalid value, [{s}]. Options: {}", options.join(", "))))
        }
        Kind::Amount => match v {
            Value::Number(n) if n.as_f64().is_some_and(|f| f >= 0.0) => None,
            Value::Number(_) => msg("Value must not be negative".into()),
            _ => msg("Value must be a number".into()),
        },
        Kind::Integer => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => None,
            _ => msg("Value must be an integer".into()),
        },
        Kind::Bool => (!v.is_boolean()).then(|| Value::String("Value must be a boolean".into())),
        Kind::Text => (!v.is_string()).then(|| Value::String(format!("Value must be a string, not {v}"))),
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn list_items(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
        other => vec![other.to_string()],
    }
}

/// A 10-digit Indian mobile number (first digit 6–9).
pub fn is_mobile(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit()) && matches!(s.as_bytes()[0], b'6'..=b'9')
}

pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

/// `YYYY-MM-DD`, a real calendar date.
pub fn is_date(s: &str) -> bool {
    s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' && s.parse::<jiff::civil::Date>().is_ok()
}

fn is_datetime(s: &str) -> bool {
    s.len() == 19 && is_date(&s[..10]) && s.as_bytes()[10] == b' ' && s[11..].parse::<jiff::civil::Time>().is_ok()
}

/// `YYYY-M-01`: four-digit year, month 1–12 without zero padding, day 01.
pub fn is_allocation_month(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else { return false };
    y.len() == 4
        && y.bytes().all(|b| b.is_ascii_digit())
        && !m.starts_with('0')
        && m.parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
        && m.bytes().all(|b| b.is_ascii_digit())
        && d == "01"
}

/// Whether `key` is a documented amount (sent with at most `amount_decimals` decimals).
pub fn is_amount(key: &str) -> bool {
    kind_of(key) == Some(Kind::Amount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upload_example() -> Value {
        serde_json::from_str(include_str!("../../../fixtures/credgenics_upload_loan.json")).unwrap()
    }

    #[test]
    fn documented_upload_example_passes() {
        let e = check_upload("283921", &upload_example());
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn documented_failures_are_reported_in_documented_shape() {
        let mut v = upload_example();
        v["applicant_contact_number"] = json!("83849879");
        v["applicant_dob"] = json!("23-03-1992");
        v["applicant_language"] = json!("feger");
        v["co_applicant"][0]["co_applicant_email"] = json!("tempgmail.com");
        v["defaults"][0]["default_emi_number"] = json!("twelve");
        let e = Value::Object(check_upload("283921", &v));
        assert_eq!(e["applicant_contact_number"], "Invalid Mobile numbers, [83849879]");
        assert_eq!(e["applicant_dob"], "Value must be of type date with format YYYY-MM-DD");
        assert_eq!(e["applicant_language"], "Invalid languages, [feger]");
        assert_eq!(
            e["co_applicant"]["0"]["co_applicant_email"],
            "Invalid Emails, [tempgmail.com]"
        );
        assert_eq!(e["defaults"]["0"]["default_emi_number"], "Value must be an integer");
    }

    #[test]
    fn required_keys_and_path_id() {
        let e = check_upload("X", &json!({"loan_id": "Y", "loan_type": "Business Loan"}));
        assert!(e.contains_key("applicant_name") && e.contains_key("total_loan_amount"));
        assert!(e["loan_id"].as_str().unwrap().contains("does not match"));
    }

    #[test]
    fn allocation_month_form() {
        assert!(is_allocation_month("2021-7-01"));
        assert!(is_allocation_month("2026-12-01"));
        assert!(!is_allocation_month("2021-07-01"));
        assert!(!is_allocation_month("2021-13-01"));
        assert!(!is_allocation_month("2021-7-1"));
    }

    #[test]
    fn mobiles() {
        assert!(is_mobile("9805265926"));
        assert!(!is_mobile("83849879"));
        assert!(!is_mobile("1234567890"));
        let e = check_update(&json!({"applicant_contact_number": "9805265926,123"}));
        assert_eq!(e["applicant_contact_number"], "Invalid Mobile numbers, [123]");
    }
}
