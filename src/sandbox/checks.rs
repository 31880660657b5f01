//! The fake Credgenics' own request validation, written from `shared/api-docs/credgenics-api.txt`
//! alone: the "Request Body Parameters" tables of the Upload Loan API (also used for Update Loan,
//! which updates the same keys) and of the Update Payment API, and the documented 400 answer
//! (`{"message": "Data Validation Failed", "output": {"errors": {field: message}}}`, a list's
//! errors nested by index).
//!
//! It owns what the sandbox accepts. It deliberately shares nothing with the daemon's preflight
//! (`crate::credgenics::rules`) and must never import it (design §7): the sandbox stands in for
//! Credgenics, so a mistake in the preflight has to meet an independent reading of the document
//! here, not the same mistake twice.
//!
//! Reading of the document: strict where it is strict (the payment table's required keys, the
//! option lists it gives, the types of its tables, the formats it spells out: `YYYY-MM-DD` dates,
//! `YYYY-M-01` allocation months, 10-digit mobile numbers, e-mails), lenient where it is silent
//! (keys it does not list pass unchecked, optional keys may be null or `""` as its own examples
//! are, option lists are matched without regard to case because its upload example sends
//! `"Secured immovable"`). Where its examples contradict its tables, the examples pass.

use serde_json::{Map, Value};

/// Field → message (a nested map for a list's entries, keyed by index), as the 400 body carries.
pub type Errors = Map<String, Value>;

/// What one documented key holds.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// `string`.
    Str,
    /// `date`, `YYYY-MM-DD`.
    Date,
    /// `datetime`: the payment examples send `YYYY-MM-DD` and `YYYY-MM-DD HH:MM:SS`.
    DateTime,
    /// An allocation month, `YYYY-M-01` (the path parameter example "2021-2-01").
    Month,
    /// `mobile number`: 10 digits, several separated by commas.
    Mobile,
    /// `email address`: several separated by commas.
    Email,
    /// `language`: ISO 639-1 code or name of the listed languages.
    Language,
    /// A string from the given options.
    OneOf(&'static [&'static str]),
    /// `amount` / `decimal` / `percentage` (`float`): any JSON number.
    Float,
    /// The payment's `amount_recovered`: a JSON number above zero.
    Positive,
    /// `number` / `postal code` (`integer`).
    Int,
    /// An account number: the table says integer, but its examples send strings of digits (with
    /// leading zeros: "0000012835") and `""`.
    Digits,
    /// `bool` (`boolean`).
    Bool,
    /// `list` of objects, whose keys the given table describes.
    List(&'static [(&'static str, Ty)]),
}

const GENDER_APPLICANT: &[&str] = &["Male", "Female", "Non-Binary"];
const GENDER_CO_APPLICANT: &[&str] = &["Male", "Female", "Other"];
/// `reference_gender` is of type gender without a list of its own: any documented gender.
const GENDER_ANY: &[&str] = &["Male", "Female", "Non-Binary", "Other"];
const SECURITY: &[&str] = &["Secured", "Secured Movable", "Secured Immovable", "Unsecured"];
const ADDRESS_TYPE: &[&str] = &["Home", "Business", "Office"];
const PAYMENT_METHOD: &[&str] = &[
    "Online",
    "Cash",
    "Cheque",
    "Bank Account Transfer",
    "Application",
    "Payment Link",
];
const CLOSURE_WITH: &[&str] = &["NOC", "Settlement"];
/// The table's options (Field Collection, Communication, Legal) and the spelling its own examples
/// use ("Communications").
const RECOVERY_METHOD: &[&str] = &["Field Collection", "Communication", "Communications", "Legal"];
/// The listed languages: ISO 639-1 codes (the example sends "hi") and names.
const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("hi", "Hindi"),
    ("ta", "Tamil"),
    ("pa", "Punjabi"),
    ("te", "Telugu"),
    ("mr", "Marathi"),
    ("gu", "Gujarati"),
    ("kn", "Kannada"),
    ("bn", "Bengali"),
    ("ml", "Malayalam"),
    ("or", "Oriya"),
    ("as", "Assamese"),
];

/// Upload Loan, "Loan Keys" (top level).
const LOAN: &[(&str, Ty)] = &[
    ("loan_id", Ty::Str),
    ("client_customer_id", Ty::Str),
    ("loan_type", Ty::Str),
    ("applicant_name", Ty::Str),
    ("applicant_email", Ty::Email),
    ("applicant_contact_number", Ty::Mobile),
    ("applicant_gender", Ty::OneOf(GENDER_APPLICANT)),
    ("applicant_dob", Ty::Date),
    ("applicant_monthly_income", Ty::Float),
    ("applicant_cibil_score", Ty::Int),
    ("applicant_aadhar_number", Ty::Str),
    ("applicant_pan_number", Ty::Str),
    ("applicant_photo_link", Ty::Str),
    ("applicant_notice_reference_number", Ty::Str),
    ("applicant_occupation", Ty::Str),
    ("applicant_language", Ty::Language),
    ("total_loan_amount", Ty::Float),
    ("vehicle_registration_number", Ty::Str),
    ("loan_tenure", Ty::Int),
    ("client_loan_sanction_date", Ty::Date),
    ("loan_end_date", Ty::Date),
    ("interest_on_loan", Ty::Float),
    ("tenure_finished", Ty::Bool),
    ("security_type", Ty::OneOf(SECURITY)),
    ("backed_by_security", Ty::Bool),
    ("chassis_number", Ty::Str),
    ("loan_nbfc_name", Ty::Str),
    ("loan_nbfc_cin", Ty::Str),
    ("tags", Ty::Str),
    ("agent_email", Ty::Email),
    ("emi_amount", Ty::Float),
    ("engine_number", Ty::Str),
    ("group_id", Ty::Str),
    ("product_type", Ty::Str),
    ("credit_account_number", Ty::Digits),
    ("credit_account_holder_name", Ty::Str),
    ("credit_account_holder_type", Ty::Str),
    ("credit_bank_name", Ty::Str),
    ("credit_bank_ifsc_code", Ty::Str),
    ("business_name", Ty::Str),
    ("make_and_model", Ty::Str),
    ("merchant_name", Ty::Str),
    ("notice_date", Ty::Date),
    ("notice_delivery_partner", Ty::Str),
    ("payment_link", Ty::Str),
    ("payment_link_expiry", Ty::Int),
    ("channel_partner", Ty::Str),
    ("loan_region", Ty::Str),
    ("loan_regional_manager_name", Ty::Str),
    ("loan_regional_manager_contact_number", Ty::Mobile),
    ("loan_regional_manager_contact_email", Ty::Email),
    ("loan_source_branch_address", Ty::Str),
    ("document_details", Ty::List(DOCUMENT)),
    ("applicant_address", Ty::List(APPLICANT_ADDRESS)),
    ("defaults", Ty::List(DEFAULT)),
    ("references", Ty::List(REFERENCE)),
    ("co_applicant", Ty::List(CO_APPLICANT)),
];

/// "Document Keys", the entries of `document_details`.
const DOCUMENT: &[(&str, Ty)] = &[
    ("security_mode", Ty::Str),
    ("document_number", Ty::Str),
    ("document_bank_name", Ty::Str),
    ("document_bank_ifsc_code", Ty::Str),
    ("document_amount", Ty::Float),
    ("document_date", Ty::Date),
    ("document_dishonour_date", Ty::Date),
    ("document_signature_name", Ty::Str),
    ("document_bounce_bank_account_number", Ty::Digits),
    ("document_bounce_charges", Ty::Float),
    ("document_bounce_bank_name", Ty::Str),
    ("document_bounce_bank_ifsc_code", Ty::Str),
    ("document_bounce_bank_address", Ty::Str),
    ("document_bounce_memo_date", Ty::Date),
    ("reason_of_document_bounce", Ty::Str),
    ("document_micr", Ty::Str),
    ("document_presented_in_account", Ty::Str),
    ("document_presented_zone", Ty::Str),
    ("document_bounce_memo_branch_address", Ty::Str),
    ("document_signature_address_text", Ty::Str),
    ("document_signature_city", Ty::Str),
    ("document_signature_state", Ty::Str),
    ("document_signature_pincode", Ty::Int),
    ("document_bounce_memo_reference_number", Ty::Str),
    ("document_sequence_number", Ty::Str),
    ("document_bounce_memo_return_date", Ty::Date),
    ("document_umrn", Ty::Str),
];

/// "Address Keys", the entries of `applicant_address`.
const APPLICANT_ADDRESS: &[(&str, Ty)] = &[
    ("applicant_address_type", Ty::OneOf(ADDRESS_TYPE)),
    ("applicant_address_text", Ty::Str),
    ("applicant_state", Ty::Str),
    ("applicant_city", Ty::Str),
    ("applicant_landmark", Ty::Str),
    ("applicant_pincode", Ty::Int),
    ("applicant_address_latitude", Ty::Str),
    ("applicant_address_longitude", Ty::Str),
];

/// "Default Keys", the entries of `defaults` (one per allocation month).
const DEFAULT: &[(&str, Ty)] = &[
    ("allocation_month", Ty::Month),
    ("allocation_dpd_value", Ty::Int),
    ("allocation_dpd_bracket", Ty::Str),
    ("total_claim_amount", Ty::Float),
    ("late_fee", Ty::Float),
    ("date_of_default", Ty::Date),
    ("expected_emi", Ty::Float),
    ("default_emi_number", Ty::Int),
    ("settlement_amount", Ty::Float),
    ("client_amount_recovered", Ty::Float),
    ("principal_outstanding_amount", Ty::Float),
    ("expected_emi_interest_amount", Ty::Float),
    ("expected_emi_principal_amount", Ty::Float),
    ("other_penalty", Ty::Float),
];

/// "Reference Keys", the entries of `references`.
const REFERENCE: &[(&str, Ty)] = &[
    ("relation_with_applicant", Ty::Str),
    ("name", Ty::Str),
    ("contact_number", Ty::Mobile),
    ("reference_gender", Ty::OneOf(GENDER_ANY)),
    ("reference_pan_number", Ty::Str),
    ("reference_address", Ty::List(REFERENCE_ADDRESS)),
];

const REFERENCE_ADDRESS: &[(&str, Ty)] = &[
    ("reference_address_type", Ty::Str),
    ("reference_address_text", Ty::Str),
    ("reference_city", Ty::Str),
    ("reference_state", Ty::Str),
    ("reference_pincode", Ty::Int),
];

/// "Coapplicant Keys", the entries of `co_applicant`.
const CO_APPLICANT: &[(&str, Ty)] = &[
    ("co_applicant_name", Ty::Str),
    ("co_applicant_type", Ty::Str),
    ("co_applicant_language", Ty::Language),
    ("co_applicant_email", Ty::Email),
    ("co_applicant_contact_number", Ty::Mobile),
    ("co_applicant_gender", Ty::OneOf(GENDER_CO_APPLICANT)),
    ("co_applicant_dob", Ty::Date),
    ("co_applicant_notice_reference_number", Ty::Str),
    ("co_applicant_photo_link", Ty::Str),
    ("co_applicant_address", Ty::List(CO_APPLICANT_ADDRESS)),
];

const CO_APPLICANT_ADDRESS: &[(&str, Ty)] = &[
    ("co_applicant_address_text", Ty::Str),
    ("co_applicant_address_type", Ty::OneOf(ADDRESS_TYPE)),
    ("co_applicant_state", Ty::Str),
    ("co_applicant_city", Ty::Str),
    ("co_applicant_pincode", Ty::Int),
    ("co_applicant_address_latitude", Ty::Str),
    ("co_applicant_address_longitude", Ty::Str),
];

/// Update Payment, "Request Body Parameters": key, type, required.
const PAYMENT: &[(&str, Ty, bool)] = &[
    ("final_status", Ty::Str, true),
    ("amount_recovered", Ty::Positive, true),
    ("recovery_method", Ty::OneOf(RECOVERY_METHOD), false),
    ("payment_method", Ty::OneOf(PAYMENT_METHOD), true),
    ("payment_received_date", Ty::Date, false),
    ("closure_with", Ty::OneOf(CLOSURE_WITH), false),
    ("payment_reference_number", Ty::Str, false),
    ("payment_mode", Ty::Str, false),
    ("recovered_by", Ty::Str, false),
    ("recovery_date", Ty::DateTime, false),
    // The credit-line variant of the same table.
    ("client_customer_id", Ty::Str, false),
    // In the "Recovery Amount Bifurcation" example.
    ("date_of_default", Ty::Date, false),
];

const REQUIRED: &str = "This field is required";

/// Errors of an Upload Loan body (`POST /loan/{loan_id}`); empty when it passes.
///
/// The table marks no key required; what the sandbox insists on is what the API's own shape
/// implies: a JSON object, a `loan_id` (when given) naming the loan of the path, and each
/// `defaults[]` entry carrying the allocation month it is the entry of.
pub fn upload_errors(path_loan_id: &str, body: &Value) -> Errors {
    loan_errors(path_loan_id, body)
}

/// Errors of an Update Loan body (`PATCH /loan/{loan_id}`): the keys given are checked as the
/// upload table types them; nothing is required.
pub fn update_errors(path_loan_id: &str, body: &Value) -> Errors {
    loan_errors(path_loan_id, body)
}

/// Errors of an Update Payment call (`PATCH /payments/{loan_id}?allocation_month=`): its body by
/// the payment table, and the `allocation_month` query parameter (`None` when absent).
pub fn payment_errors(body: &Value, allocation_month: Option<&str>) -> Errors {
    let mut errors = Errors::new();
    match allocation_month {
        None | Some("") => {
            errors.insert("allocation_month".into(), REQUIRED.into());
        }
        Some(m) if !is_month(m) => {
            errors.insert("allocation_month".into(), month_message(m).into());
        }
        Some(_) => {}
    }
    let Some(obj) = body.as_object() else {
        errors.insert("body".into(), "Request body must be a JSON object".into());
        return errors;
    };
    for (key, ty, required) in PAYMENT {
        match obj.get(*key) {
            None | Some(Value::Null) => {
                if *required {
                    errors.insert((*key).into(), REQUIRED.into());
                }
            }
            Some(Value::String(s)) if *required && s.trim().is_empty() => {
                errors.insert((*key).into(), REQUIRED.into());
            }
            Some(v) => {
                if let Some(e) = check(*ty, v) {
                    errors.insert((*key).into(), e);
                }
            }
        }
    }
    // Bifurcation keys: `recovered_` + a default key, an amount.
    for (key, v) in obj {
        if key.starts_with("recovered_")
            && !PAYMENT.iter().any(|(k, _, _)| k == key)
            && let Some(e) = check(Ty::Float, v)
        {
            errors.insert(key.clone(), e);
        }
    }
    errors
}

fn loan_errors(path_loan_id: &str, body: &Value) -> Errors {
    let Some(obj) = body.as_object() else {
        return Errors::from_iter([("body".to_string(), "Request body must be a JSON object".into())]);
    };
    let mut errors = check_entry(LOAN, obj);
    if let Some(Value::String(id)) = obj.get("loan_id")
        && !id.is_empty()
        && id != path_loan_id
    {
        errors.insert(
            "loan_id".into(),
            format!("loan_id [{id}] is not the loan of the path [{path_loan_id}]").into(),
        );
    }
    if let Some(Value::Array(entries)) = obj.get("defaults") {
        for (i, entry) in entries.iter().enumerate() {
            let missing = entry
                .as_object()
                .is_some_and(|e| matches!(e.get("allocation_month"), None | Some(Value::Null)))
                || entry["allocation_month"] == "";
            if missing {
                let by_index = errors.entry("defaults").or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(by_index) = by_index
                    && let Value::Object(fields) = by_index
                        .entry(i.to_string())
                        .or_insert_with(|| Value::Object(Map::new()))
                {
                    fields.insert("allocation_month".into(), REQUIRED.into());
                }
            }
        }
    }
    errors
}

/// Checks the keys of one object that `table` lists; other keys pass.
fn check_entry(table: &[(&str, Ty)], obj: &Map<String, Value>) -> Errors {
    let mut errors = Errors::new();
    for (key, ty) in table {
        if let Some(v) = obj.get(*key)
            && let Some(e) = check(*ty, v)
        {
            errors.insert((*key).into(), e);
        }
    }
    errors
}

/// The error of one present value, `None` when it passes. Null and `""` pass: the documented
/// examples carry both for keys they leave empty (required keys are checked before).
fn check(ty: Ty, v: &Value) -> Option<Value> {
    if v.is_null() || v == "" {
        return None;
    }
    let fail = |m: String| Some(Value::String(m));
    match ty {
        Ty::List(table) => {
            let Value::Array(items) = v else {
                return fail("Value must be a list".into());
            };
            let mut by_index = Map::new();
            for (i, item) in items.iter().enumerate() {
                let e = match item {
                    Value::Object(o) => {
                        let e = check_entry(table, o);
                        (!e.is_empty()).then_some(Value::Object(e))
                    }
                    _ => Some("Value must be an object".into()),
                };
                if let Some(e) = e {
                    by_index.insert(i.to_string(), e);
                }
            }
            (!by_index.is_empty()).then_some(Value::Object(by_index))
        }
        Ty::Float => (!v.is_number()).then(|| "Value must be a number".into()),
        Ty::Positive => match v {
            Value::Number(n) if n.as_f64().is_some_and(|f| f.is_finite() && f > 0.0) => None,
            Value::Number(_) => fail("Value must be a number greater than 0".into()),
            _ => fail("Value must be a number".into()),
        },
        Ty::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0) => None,
            Value::Number(_) => fail("Value must be an integer".into()),
            _ => fail("Value must be a number".into()),
        },
        Ty::Digits => match v {
            Value::Number(n) if n.is_u64() => None,
            Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) => None,
            _ => fail("Value must be an account number (digits)".into()),
        },
        Ty::Bool => (!v.is_boolean()).then(|| "Value must be a boolean".into()),
        _ => {
            let Value::String(s) = v else {
                return fail("Value must be a string".into());
            };
            check_text(ty, s).map(Value::String)
        }
    }
}

/// The string types.
fn check_text(ty: Ty, s: &str) -> Option<String> {
    match ty {
        Ty::Date => (!is_date(s)).then(|| "Value must be of type date with format YYYY-MM-DD".into()),
        Ty::DateTime => {
            let ok = is_date(s) || s.split_once(' ').is_some_and(|(d, t)| is_date(d) && is_time(t));
            (!ok).then(|| "Value must be of type datetime with format YYYY-MM-DD or YYYY-MM-DD HH:MM:SS".into())
        }
        Ty::Month => (!is_month(s)).then(|| month_message(s)),
        Ty::Mobile => {
            let bad: Vec<&str> = s
                .split(',')
                .map(str::trim)
                .filter(|m| !(m.len() == 10 && m.bytes().all(|b| b.is_ascii_digit())))
                .collect();
            (!bad.is_empty()).then(|| format!("Invalid Mobile numbers, [{}]", bad.join(", ")))
        }
        Ty::Email => {
            let bad: Vec<&str> = s.split(',').map(str::trim).filter(|e| !is_email(e)).collect();
            (!bad.is_empty()).then(|| format!("Invalid Emails, [{}]", bad.join(", ")))
        }
        Ty::Language => {
            let known = LANGUAGES
                .iter()
                .any(|(code, name)| code.eq_ignore_ascii_case(s) || name.eq_ignore_ascii_case(s));
            (!known).then(|| format!("Invalid languages, [{s}]"))
        }
        Ty::OneOf(options) => (!options.iter().any(|o| o.eq_ignore_ascii_case(s.trim())))
            .then(|| format!("Invalid value, [{s}]: options are {}", options.join(", "))),
        _ => None,
    }
}

/// `YYYY-M-01`: the month without zero padding ("2021-7-01", "2021-12-01"), the day 01.
fn is_month(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    y.len() == 4
        && y.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            m,
            "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "10" | "11" | "12"
        )
        && d == "01"
}

fn month_message(s: &str) -> String {
    format!("Invalid allocation month, [{s}]: the format is YYYY-M-01 without zero padding, e.g. 2021-7-01")
}

/// `YYYY-MM-DD`, a day of the calendar.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (s[0..4].parse::<i16>(), s[5..7].parse::<i8>(), s[8..10].parse::<i8>()) else {
        return false;
    };
    jiff::civil::Date::new(y, m, d).is_ok()
}

/// `HH:MM:SS`, optionally with a fraction of a second (the Get Loan example's
/// "2020-09-12 00:59:51.418571").
fn is_time(s: &str) -> bool {
    let (hms, fraction) = match s.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (s, None),
    };
    let b = hms.as_bytes();
    let two = |i: usize| -> Option<u8> {
        let (h, l) = (*b.get(i)?, *b.get(i + 1)?);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| (h - b'0') * 10 + (l - b'0'))
    };
    b.len() == 8
        && b[2] == b':'
        && b[5] == b':'
        && two(0).is_some_and(|h| h < 24)
        && two(3).is_some_and(|m| m < 60)
        && two(6).is_some_and(|s| s < 60)
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()))
}

/// One address: something before a single `@`, a dotted domain after it, no spaces.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
        && !s.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The Upload Loan example of the document (its `curl` body, which is valid JSON).
    fn upload_example() -> Value {
        serde_json::from_str(include_str!("../../fixtures/credgenics_upload_loan.json")).unwrap()
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
}
