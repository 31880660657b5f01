//! `dead-letters list | retry | ignore`: what the partners (or the preflight) refused, with when
//! and how often it was tried; retried or set aside with who, when and why kept in the state
//! (`list --ignored` shows the set-aside ones).

use std::path::Path;

use serde_json::{Value, json};

use super::shared::{now, open, when};
use crate::app::report::{AppError, Report};
use crate::store::LedgerRow;

/// A reason as JSON: the field errors as an object when the reason is one (the preflight's and
/// Credgenics' are), else the text — masked either way.
fn reason_value(reason: Option<&str>) -> Value {
    fn mask(v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(crate::telemetry::mask_digits(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(mask).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, mask(v))).collect()),
            // A number in a reason may be a phone or an account number.
            Value::Number(n) => Value::String(crate::telemetry::mask_digits(&n.to_string())),
            other => other,
        }
    }
    let Some(r) = reason else { return Value::Null };
    // Parsed first, masked after: masking first could break the JSON.
    match serde_json::from_str::<Value>(r) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => mask(v),
        _ => Value::String(crate::telemetry::mask_digits(r)),
    }
}

/// Epoch seconds as RFC 3339 (UTC), for JSON.
fn at(ts: f64) -> Value {
    jiff::Timestamp::from_millisecond((ts * 1000.0) as i64)
        .map(|t| Value::String(t.to_string()))
        .unwrap_or(Value::Null)
}

fn payment_line(r: &LedgerRow) -> Value {
    json!({
        "id": format!("payment:{}", r.id),
        "to": r.direction.as_str(),
        "loan_id": r.loan_id,
        "amount": r.amount.to_string(),
        "reference": r.reference,
        "attempts": r.attempts,
        "created_at": at(r.created_at),
        "last_attempt_at": at(r.updated_at),
        "reason": reason_value(r.dead_reason.as_deref()),
    })
}

/// Who runs this command, for the audit: the operator behind sudo, else the login.
fn actor() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// `list --ignored`: the dead letters set aside, with who, when and why.
fn list_ignored(path: &Path, as_json: bool) -> Result<Report, AppError> {
    let store = open(path)?;
    let entries = store
        .ignored_dead_letters()
        .map_err(|e| AppError::Failed(e.to_string()))?;
    if as_json {
        let items: Vec<Value> = entries
            .iter()
            .map(|e| json!({"id": e.target, "ignored_by": e.by, "ignored_at": e.at.map(at), "reason": e.reason}))
            .collect();
        println!("{}", Value::Array(items));
        return Ok(Report::Clear);
    }
    if entries.is_empty() {
        println!("no dead letters set aside");
    }
    for e in &entries {
        let who = match (&e.by, e.at) {
            (Some(by), at) => format!("ignored by {by} at {}", when(at)),
            _ => "ignored before this version recorded who and when".to_string(),
        };
        println!("{:<16} {who}: {}", e.target, e.reason.as_deref().unwrap_or_default());
    }
    Ok(Report::Clear)
}

pub fn list(path: &Path, as_json: bool, ignored: bool) -> Result<Report, AppError> {
    if ignored {
        return list_ignored(path, as_json);
    }
    let store = open(path)?;
    let (payments, loans, lines) = match (store.dead_letters(), store.rejected_loans(), store.line_dead_letters()) {
        (Ok(p), Ok(l), Ok(d)) => (p, l, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(AppError::Failed(e.to_string())),
    };
    let mut items: Vec<Value> = loans
        .iter()
        .map(|l| {
            json!({"id": format!("loan:{}", l.loan_id), "to": "credgenics", "loan_id": l.loan_id,
                   "borrower_program_id": l.borrower_program_id, "last_attempt_at": at(l.updated_at),
                   "reason": reason_value(l.error.as_deref())})
        })
        .collect();
    items.extend(payments.iter().map(payment_line));
    items.extend(lines.iter().map(|d| {
        json!({"id": format!("line:{}", d.line_id), "to": "credgenics", "lead_id": d.lead_id,
               "borrower_program_id": d.borrower_program_id, "attempts": d.attempts,
               "created_at": at(d.created_at), "last_attempt_at": at(d.updated_at),
               "reason": reason_value(Some(&d.reason))})
    }));
    if as_json {
        println!("{}", Value::Array(items));
        return Ok(Report::Clear);
    }
    if items.is_empty() {
        println!("no dead letters");
    }
    for i in &items {
        let tried = match (i["attempts"].as_i64(), i["last_attempt_at"].as_str()) {
            (Some(n), Some(t)) => format!("{n} attempt(s), last {t}; "),
            (None, Some(t)) => format!("last {t}; "),
            _ => String::new(),
        };
        let reason = match &i["reason"] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        println!(
            "{:<16} to {:<10} loan {:<12} {}{tried}{reason}",
            i["id"].as_str().unwrap_or_default(),
            i["to"].as_str().unwrap_or_default(),
            i["loan_id"]
                .as_str()
                .or(i["borrower_program_id"].as_str())
                .unwrap_or_default(),
            i["amount"].as_str().map(|a| format!("₹{a} ")).unwrap_or_default(),
        );
    }
    Ok(Report::Clear)
}

/// `loan:<id>`, `line:<id>` or `payment:<n>` (a bare number is a payment).
enum Target {
    Loan(String),
    Line(String),
    Payment(i64),
}

fn parse_target(id: &str) -> Option<Target> {
    if let Some(l) = id.strip_prefix("loan:") {
        return (!l.is_empty()).then(|| Target::Loan(l.to_string()));
    }
    if let Some(l) = id.strip_prefix("line:") {
        return (!l.is_empty()).then(|| Target::Line(l.to_string()));
    }
    id.strip_prefix("payment:")
        .unwrap_or(id)
        .parse()
        .ok()
        .map(Target::Payment)
}

pub fn retry(path: &Path, id: Option<&str>, all: bool) -> Result<Report, AppError> {
    let store = open(path)?;
    let targets: Vec<Target> = if all {
        let listed = store
            .rejected_loans()
            .and_then(|l| Ok((l, store.dead_letters()?, store.line_dead_letters()?)));
        let (loans, payments, lines) =
            listed.map_err(|e| AppError::Failed(format!("cannot list the dead letters: {e}")))?;
        let mut t: Vec<Target> = loans.into_iter().map(|l| Target::Loan(l.loan_id)).collect();
        t.extend(payments.into_iter().map(|r| Target::Payment(r.id)));
        t.extend(lines.into_iter().map(|d| Target::Line(d.line_id)));
        t
    } else {
        match id.and_then(parse_target) {
            Some(t) => vec![t],
            None => {
                return Err(AppError::Usage(
                    "give a dead letter id (loan:<loan id>, line:<line id> or payment:<n>, as `dead-letters list` shows) or --all"
                        .into(),
                ));
            }
        }
    };
    let mut missing = 0;
    for t in &targets {
        let ok = match t {
            Target::Loan(l) => store.resync_loan(l),
            Target::Line(l) => store.retry_line(l),
            Target::Payment(n) => store.retry_dead(*n, now()),
        };
        match ok {
            Ok(true) => {
                let _ = store.audit_dead_letter(&describe(t), "retried", None, &actor(), now());
            }
            Ok(false) => {
                missing += 1;
                eprintln!("error: {} is not a dead letter", describe(t));
            }
            Err(e) => return Err(AppError::Failed(e.to_string())),
        }
    }
    println!("{} dead letter(s) queued for the next run", targets.len() - missing);
    Ok(Report::clear_if(missing == 0))
}

pub fn ignore(path: &Path, id: &str, reason: &str) -> Result<Report, AppError> {
    if reason.trim().is_empty() {
        return Err(AppError::Usage(
            "--reason is required: say why this dead letter is set aside".into(),
        ));
    }
    let Some(t) = parse_target(id) else {
        return Err(AppError::Usage(format!(
            "`{id}` is not a dead letter id (loan:<loan id>, line:<line id> or payment:<n>)"
        )));
    };
    let store = open(path)?;
    let ok = match &t {
        Target::Loan(l) => store.ignore_loan(l, reason),
        Target::Line(l) => store.ignore_line(l, reason),
        Target::Payment(n) => store.ignore_dead(*n, reason, now()),
    };
    match ok {
        Ok(true) => {
            store
                .audit_dead_letter(&describe(&t), "ignored", Some(reason), &actor(), now())
                .map_err(|e| AppError::Failed(format!("ignored, but the audit entry was not written: {e}")))?;
            println!(
                "{} ignored (by {}; `dead-letters list --ignored` shows it)",
                describe(&t),
                actor()
            );
            Ok(Report::Clear)
        }
        Ok(false) => Err(AppError::Failed(format!("{} is not a dead letter", describe(&t)))),
        Err(e) => Err(AppError::Failed(e.to_string())),
    }
}

fn describe(t: &Target) -> String {
    match t {
        Target::Loan(l) => format!("loan:{l}"),
        Target::Line(l) => format!("line:{l}"),
        Target::Payment(n) => format!("payment:{n}"),
    }
}
