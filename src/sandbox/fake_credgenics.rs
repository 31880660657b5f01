//! The fake Credgenics under `/recovery`: `GET /loan/{id}` (404 when absent), `POST /loan/{id}`
//! (upload; a new `defaults[]` month is a new allocation) and `PATCH /loan/{id}`, validated by the
//! sandbox's own reading of the documented field rules ([`super::checks`], never the daemon's
//! preflight) and answering the documented bodies. `authenticationtoken` required.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::checks;
use super::gate::{
    Gate, Shared, gatekeeper, json_error, parse_body, requests_handler, stats_handler, validation_failed,
};
use super::state::CgLoan;
use crate::partners::http::Api;

pub fn router(shared: Arc<Shared>) -> Router {
    let gate = Gate {
        shared,
        api: Api::Credgenics,
    };
    // A credit-line tenant serves the Credit Line APIs instead of the lending ones.
    let api = if gate.shared.config.tenant.credit_line {
        super::credit_line::routes()
    } else {
        Router::new()
            .route("/loan/{loan_id}", get(get_loan).post(upload_loan).patch(update_loan))
            .route("/payments/{loan_id}", axum::routing::patch(add_payment))
    };
    let api = api
        .route("/_sandbox/requests", get(requests_handler))
        .route("/_sandbox/stats", get(stats_handler));
    Router::new()
        // Documented at the host's root, beside `/recovery` (api-docs/secondary/).
        .route("/user/public/access-token", axum::routing::post(access_token))
        .nest("/recovery", api)
        .layer(axum::middleware::from_fn_with_state(gate.clone(), gatekeeper))
        .with_state(gate)
}

/// The loan as `GET /loan/{id}` shows it: `loan_details` with its `defaults`, and the payments
/// in the documented `payment_history` shape.
pub fn loan_view(loan: &CgLoan) -> Value {
    let mut details = loan.details.clone();
    details.insert("defaults".into(), Value::Array(loan.defaults.clone()));
    let history: Vec<Value> = loan.payment_history.iter().map(payment_history_entry).collect();
    json!({"loan_details": details, "payment_history": history})
}

/// The keys of a documented `payment_history` entry (Get Loan API example).
const PAYMENT_HISTORY_KEYS: [&str; 10] = [
    "payment_id",
    "amount_recovered",
    "final_status",
    "recovery_method",
    "allocation_month",
    "payment_method",
    "payment_mode",
    "payment_reference_number",
    "author",
    "created",
];

/// One stored payment as `payment_history` shows it: the documented keys only (no
/// `recovery_date`, `closure_with`, `payment_received_date`, `recovered_by`...), a text key that
/// was not given shown as `""` as in the documented example.
fn payment_history_entry(payment: &Value) -> Value {
    let mut entry = Map::new();
    for key in PAYMENT_HISTORY_KEYS {
        let v = match payment.get(key) {
            Some(v) if !v.is_null() => v.clone(),
            _ if matches!(key, "payment_id" | "amount_recovered") => Value::Null,
            _ => Value::String(String::new()),
        };
        entry.insert(key.to_string(), v);
    }
    Value::Object(entry)
}

async fn get_loan(
    State(gate): State<Gate>,
    Path(loan_id): Path<String>,
    Query(_q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    match gate.shared.lock().cg_loans.get(&loan_id) {
        Some(l) => Json(loan_view(l)).into_response(),
        None if gate.shared.config.tenant.unknown_is_400 => {
            json_error(StatusCode::BAD_REQUEST, json!({"message": "Loan not found"}))
        }
        None => json_error(StatusCode::NOT_FOUND, json!({"message": "Loan not found"})),
    }
}

/// Merges `defaults[]` entries by allocation month.
fn merge_defaults(loan: &mut CgLoan, entries: &[Value], upload: bool) {
    super::credit_line_book::merge_defaults(&mut loan.defaults, &mut loan.uploads_per_month, entries, upload);
}

fn merge_top(loan: &mut CgLoan, body: &Map<String, Value>) {
    for (k, v) in body {
        if k != "defaults" {
            loan.details.insert(k.clone(), v.clone());
        }
    }
}

async fn upload_loan(State(gate): State<Gate>, Path(loan_id): Path<String>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let errors = checks::upload_errors(&loan_id, &body);
    if !errors.is_empty() {
        return validation_failed(errors);
    }
    let obj = body.as_object().expect("checked object");
    let mut s = gate.shared.lock();
    let first = !s.cg_loans.contains_key(&loan_id);
    let loan = s.cg_loans.entry(loan_id.clone()).or_default();
    merge_top(loan, obj);
    if let Some(Value::Array(d)) = obj.get("defaults") {
        merge_defaults(loan, d, true);
    }
    let pct = u64::from(gate.shared.config.collect_pct);
    if first && pct > 0 {
        // The same loans, whatever the order of uploads: a hash of the id decides.
        let h = loan_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        if h % 100 < pct {
            let amount = rust_decimal::Decimal::from(500 + (h / 100 % 50) * 10);
            s.add_agent_collection(&loan_id, amount, &format!("AGENT-{loan_id}"));
        }
    }
    (
        StatusCode::CREATED,
        Json(json!({"message": "Data uploaded successfully"})),
    )
        .into_response()
}

async fn update_loan(State(gate): State<Gate>, Path(loan_id): Path<String>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let errors = checks::update_errors(&loan_id, &body);
    if !errors.is_empty() {
        return validation_failed(errors);
    }
    let obj = body.as_object().expect("checked object");
    let mut s = gate.shared.lock();
    let Some(loan) = s.cg_loans.get_mut(&loan_id) else {
        return json_error(StatusCode::NOT_FOUND, json!({"message": "Loan not found"}));
    };
    if let Some(Value::Array(d)) = obj.get("defaults") {
        let unknown: Vec<&Value> = d
            .iter()
            .filter(|e| {
                !loan
                    .defaults
                    .iter()
                    .any(|x| x["allocation_month"] == e["allocation_month"])
            })
            .collect();
        if !unknown.is_empty() {
            return validation_failed(Map::from_iter([(
                "defaults".to_string(),
                json!("allocation_month not allocated for this loan: upload it first"),
            )]));
        }
        merge_defaults(loan, d, false);
    }
    merge_top(loan, obj);
    Json(json!({"output": "Loan successfully updated", "message": "success", "headers": {"Content-Type": "application/json"}}))
        .into_response()
}

/// The older document's payment rules (`api-docs/secondary/`): "Choices - Partially Recovered,
/// Closed", `date_of_default` "Required only if final_status is Partially Recovered", and the
/// main document's `amount_recovered | integer`.
fn strict_payment_errors(body: &Value, errors: &mut Map<String, Value>) {
    let status = body["final_status"].as_str();
    if status.is_some_and(|s| s != "Closed" && s != "Partially Recovered") {
        errors.insert(
            "final_status".into(),
            json!("final_status must be one of: Partially Recovered, Closed"),
        );
    }
    if status == Some("Partially Recovered") && body.get("date_of_default").is_none_or(Value::is_null) {
        errors.insert(
            "date_of_default".into(),
            json!("date_of_default is required when final_status is Partially Recovered"),
        );
    }
    if body["amount_recovered"]
        .as_number()
        .is_some_and(|n| !n.is_i64() && !n.is_u64())
    {
        errors.insert("amount_recovered".into(), json!("amount_recovered must be an integer"));
    }
}

/// `PATCH /payments/{loan_id}?allocation_month=`: one new payment entry per call, announced by the
/// `payment` webhook.
async fn add_payment(
    State(gate): State<Gate>,
    Path(loan_id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let month = q.get("allocation_month").cloned().unwrap_or_default();
    let mut errors = checks::payment_errors(&body, q.get("allocation_month").map(String::as_str));
    if gate.shared.config.tenant.strict_payments {
        strict_payment_errors(&body, &mut errors);
    }
    if !errors.is_empty() {
        return validation_failed(errors);
    }
    let payment = {
        let mut s = gate.shared.lock();
        let Some(loan) = s.cg_loans.get(&loan_id) else {
            return json_error(StatusCode::NOT_FOUND, json!({"message": "Loan not found"}));
        };
        if !loan.defaults.iter().any(|d| d["allocation_month"] == month.as_str()) {
            return validation_failed(Map::from_iter([(
                "allocation_month".to_string(),
                json!(format!("Loan {loan_id} is not allocated for {month}")),
            )]));
        }
        let mut entry = body.clone();
        entry["allocation_month"] = json!(month);
        entry["author"] = json!("api");
        s.record_payment(&loan_id, entry)
    };
    let shared = gate.shared.clone();
    let hook = super::gate::payment_webhook(&loan_id, &payment);
    tokio::spawn(async move { super::gate::emit_webhook(&shared, hook).await });
    Json(json!({"output": "Data updated successfully", "message": "success", "headers": {"Content-Type": "application/json"}}))
        .into_response()
}

/// `POST /user/public/access-token {client_id, client_secret[, token_expiry_duration]}` →
/// `{api_key, expiry, company_details}`; the lifetime asked for is honoured up to the
/// documented 86 400 s, 900 s being the default the sandbox's config may shorten for tests.
async fn access_token(State(gate): State<Gate>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let cfg = &gate.shared.config;
    if v["client_id"] != cfg.credgenics_client_id.as_str()
        || v["client_secret"] != cfg.credgenics_client_secret.as_str()
    {
        return json_error(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid client credentials"}),
        );
    }
    let ttl = match &v["token_expiry_duration"] {
        Value::Null => cfg.token_ttl_secs,
        d => match d.as_u64() {
            Some(secs) if (1..=86_400).contains(&secs) => secs as f64,
            _ => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "token_expiry_duration must be an integer number of seconds, at most 86400"}),
                );
            }
        },
    };
    let answer = gate.shared.lock().issue_token("credgenics", ttl, false, &cfg.tenant);
    Json(answer).into_response()
}
