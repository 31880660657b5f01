//! The fake Credgenics' own request validation, written from `shared/api-docs/credgenics-api.txt`
//! alone: the "Request Body Parameters" tables of the Upload Loan API (also used for Update Loan,
//! which updates the same keys) and of the Update Payment API, and the documented 400 answer
//! (`{"message": "Data Validation Failed", "output": {"errors": {field: message}}}`, a list's
//! errors nested by index).
//!
//! It owns what the sandbox accepts. It deliberately shares nothing with the daemon's preflight
//! (`crate::partners::credgenics::rules`) and must never import it (design §7): the sandbox stands in for
//! Credgenics, so a mistake in the preflight has to meet an independent reading of the document
//! here, not the same mistake twice.
//!
//! Reading of the document: strict where it is strict (the payment table's required keys, the
//! option lists it gives, the types of its tables, the formats it spells out: `YYYY-MM-DD` dates,
//! `YYYY-M-01` allocation months, 10-digit mobile numbers, e-mails), lenient where it is silent
//! (keys it does not list pass unchecked, optional keys may be null or `""` as its own examples
//! are, option lists are matched without regard to case because its upload example sends
//! `"Secured immovable"`). Where its examples contradict its tables, the examples pass.

mod tables;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use tables::*;

/// Field → message (a nested map for a list's entries, keyed by index), as the 400 body carries.
pub type Errors = Map<String, Value>;

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
