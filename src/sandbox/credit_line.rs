//! The Credit Line APIs a credit-line tenant's fake Credgenics serves (design §8), strict as the
//! document is (`docs/credit-line-api.md` §10 gives each rule with its line in the document):
//!
//! - `POST /loan/{transaction_id}` (Upload Transaction): `client_customer_id` required; a body
//!   `transaction_id` must be the path's; the rest checked as an Upload Loan body; a transaction
//!   belongs to the customer it was first uploaded under; 201 with the documented body.
//! - `PATCH /transaction/{client_customer_id}/{transaction_id}` (Update Transaction): 404 unless
//!   the transaction is that customer's; a month not uploaded is refused.
//! - `PATCH /payments/{transaction_id}?allocation_month=` (Update Payment): `client_customer_id`
//!   required and the transaction's; one new entry in the **customer's** payment history, with
//!   the documented keys only (no `transaction_id`: nothing documented ties a payment to a
//!   drawdown), and the transaction's month updated.
//! - `GET /loan/{client_customer_id}` (Get Customer): the documented `output` wrapper; 404 for an
//!   id that is not a customer (a transaction cannot be read on its own).
//!
//! Choices where the document is silent, stated: lending calls answer as no loan exists
//! (`PATCH /loan/{id}` 404; an upload without `client_customer_id` 400); no payment webhook is
//! sent (the documented event names only `loan_id`); customer-level `applicant_details` take the
//! `applicant_*` keys of the uploads.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::{Map, Value, json};

use super::checks;
use super::credit_line_book::{ClCustomer, merge_defaults};
use super::gate::{Gate, json_error, parse_body, validation_failed};

const HEADERS: &str = "application/json";

/// The routes under `/recovery`.
pub(crate) fn routes() -> Router<Gate> {
    Router::new()
        .route("/loan/{id}", get(get_customer).post(upload_transaction).patch(no_loan))
        .route("/transaction/{customer}/{transaction}", patch(update_transaction))
        .route("/payments/{transaction}", patch(add_payment))
}

fn success(status: StatusCode, output: &str) -> Response {
    (
        status,
        Json(json!({"output": output, "message": "success", "headers": {"Content-Type": HEADERS}})),
    )
        .into_response()
}

/// `client_customer_id` as a non-empty string, or its error.
fn customer_of(body: &Value, errors: &mut Map<String, Value>) -> Option<String> {
    match body["client_customer_id"].as_str().map(str::trim) {
        Some(c) if !c.is_empty() => Some(c.to_string()),
        _ => {
            errors.insert(
                "client_customer_id".into(),
                json!("This field is required (a non-empty string)"),
            );
            None
        }
    }
}

/// The body as an Upload/Update Loan body, for the lending field rules: the credit-line ids out,
/// the transaction id as the loan id.
fn as_loan_body(body: &Value, transaction: &str) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("client_customer_id");
        o.remove("transaction_id");
        o.insert("loan_id".into(), json!(transaction));
    }
    b
}

async fn upload_transaction(State(gate): State<Gate>, Path(transaction): Path<String>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut errors = checks::upload_errors(&transaction, &as_loan_body(&body, &transaction));
    let customer = customer_of(&body, &mut errors);
    if let Some(t) = body.get("transaction_id")
        && t.as_str() != Some(transaction.as_str())
    {
        errors.insert(
            "transaction_id".into(),
            json!(format!("must be the transaction id of the path ({transaction})")),
        );
    }
    let mut s = gate.shared.lock();
    let book = &mut s.credit_line;
    if let (Some(c), Some(theirs)) = (&customer, book.owner.get(&transaction))
        && theirs != c
    {
        errors.insert(
            "client_customer_id".into(),
            json!(format!("transaction {transaction} belongs to another customer")),
        );
    }
    let (Some(customer), true) = (customer, errors.is_empty()) else {
        return validation_failed(errors);
    };
    let obj = body.as_object().expect("checked object");
    book.owner.insert(transaction.clone(), customer.clone());
    let c = book.customers.entry(customer.clone()).or_default();
    c.details.insert("client_customer_id".into(), json!(customer));
    let t = c.transactions.entry(transaction.clone()).or_default();
    for (k, v) in obj {
        if k == "defaults" {
            continue;
        }
        t.details.insert(k.clone(), v.clone());
        if k.starts_with("applicant_") {
            c.details.insert(k.clone(), v.clone());
        }
    }
    t.details.insert("transaction_id".into(), json!(transaction));
    if let Some(Value::Array(d)) = obj.get("defaults") {
        merge_defaults(&mut t.defaults, &mut t.uploads_per_month, d, true);
    }
    success(StatusCode::CREATED, "Transaction added successfully")
}

async fn update_transaction(
    State(gate): State<Gate>,
    Path((customer, transaction)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let errors = checks::update_errors(&transaction, &as_loan_body(&body, &transaction));
    if !errors.is_empty() {
        return validation_failed(errors);
    }
    let mut s = gate.shared.lock();
    let Some(t) = s
        .credit_line
        .customers
        .get_mut(&customer)
        .and_then(|c| c.transactions.get_mut(&transaction))
    else {
        return json_error(
            StatusCode::NOT_FOUND,
            json!({"message": "Transaction not found for this customer"}),
        );
    };
    let obj = body.as_object().expect("checked object");
    if let Some(Value::Array(d)) = obj.get("defaults") {
        if d.iter().any(|e| {
            !t.defaults
                .iter()
                .any(|x| x["allocation_month"] == e["allocation_month"])
        }) {
            return validation_failed(Map::from_iter([(
                "defaults".to_string(),
                json!("allocation_month not allocated for this transaction: upload it first"),
            )]));
        }
        merge_defaults(&mut t.defaults, &mut t.uploads_per_month, d, false);
    }
    for (k, v) in obj {
        if !matches!(k.as_str(), "defaults" | "client_customer_id" | "transaction_id") {
            t.details.insert(k.clone(), v.clone());
        }
    }
    success(StatusCode::OK, "Transaction updated successfully")
}

/// The payment fields a transaction's month shows (CG:1024–1037).
const MONTH_FIELDS: [&str; 6] = [
    "final_status",
    "recovery_date",
    "payment_method",
    "payment_mode",
    "payment_reference_number",
    "closure_with",
];

/// The keys a documented `payment_history` entry has (CG:1098–1110), no others.
const HISTORY_FIELDS: [&str; 8] = [
    "client_customer_id",
    "amount_recovered",
    "final_status",
    "recovery_method",
    "payment_method",
    "payment_mode",
    "payment_reference_number",
    "recovered_by",
];

async fn add_payment(
    State(gate): State<Gate>,
    Path(transaction): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let month = q.get("allocation_month").cloned();
    let mut errors = checks::payment_errors(&body, month.as_deref());
    let customer = customer_of(&body, &mut errors);
    if !errors.is_empty() {
        return validation_failed(errors);
    }
    let (customer, month) = (customer.unwrap_or_default(), month.unwrap_or_default());
    let mut s = gate.shared.lock();
    let Some(owner) = s.credit_line.owner.get(&transaction).cloned() else {
        return json_error(StatusCode::NOT_FOUND, json!({"message": "Transaction not found"}));
    };
    if owner != customer {
        return validation_failed(Map::from_iter([(
            "client_customer_id".to_string(),
            json!(format!("transaction {transaction} is not this customer's")),
        )]));
    }
    s.next_payment_id += 1;
    let payment_id = s.next_payment_id;
    let c: &mut ClCustomer = s.credit_line.customers.get_mut(&owner).expect("owner is a customer");
    let t = c.transactions.get_mut(&transaction).expect("owned transaction");
    let Some(entry) = t.defaults.iter_mut().find(|d| d["allocation_month"] == month.as_str()) else {
        return validation_failed(Map::from_iter([(
            "allocation_month".to_string(),
            json!(format!("transaction {transaction} is not allocated for {month}")),
        )]));
    };
    let amount = crate::money::from_json(&body["amount_recovered"]).unwrap_or_default();
    let before = crate::money::from_json(&entry["amount_recovered"]).unwrap_or_default();
    entry["amount_recovered"] = crate::money::to_json(before + amount);
    for k in MONTH_FIELDS {
        if let Some(v) = body.get(k) {
            entry[k] = v.clone();
        }
    }
    let mut history = Map::new();
    history.insert("payment_id".into(), json!(payment_id));
    for k in HISTORY_FIELDS {
        if let Some(v) = body.get(k) {
            history.insert(k.into(), v.clone());
        }
    }
    history.insert("allocation_month".into(), json!(month));
    history.insert("author".into(), json!("api"));
    history.insert(
        "created".into(),
        json!(jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string()),
    );
    c.payment_history.push(Value::Object(history));
    success(StatusCode::OK, "Data updated successfully")
}

/// The documented Get Customer answer (CG:886–1284), as valid JSON.
fn customer_view(c: &ClCustomer) -> Value {
    let transactions: Vec<Value> = c
        .transactions
        .iter()
        .map(|(id, t)| {
            let mut data = t.details.clone();
            data.insert("defaults".into(), Value::Array(t.defaults.clone()));
            json!({"transaction_id": id, "data": data})
        })
        .collect();
    json!({
        "output": {
            "applicant_details": c.details,
            "transactions_details": transactions,
            "payment_history": c.payment_history,
            "communication_details": [],
            "notice_tracking_details": [],
            "remarks": [],
        },
        "message": "success",
        "headers": {"Content-Type": HEADERS},
    })
}

async fn get_customer(State(gate): State<Gate>, Path(customer): Path<String>) -> Response {
    match gate.shared.lock().credit_line.customers.get(&customer) {
        Some(c) => Json(customer_view(c)).into_response(),
        None => json_error(StatusCode::NOT_FOUND, json!({"message": "Customer not found"})),
    }
}

/// `PATCH /loan/{id}` on a credit-line tenant: there are no loans.
async fn no_loan() -> Response {
    json_error(StatusCode::NOT_FOUND, json!({"message": "Loan not found"}))
}
