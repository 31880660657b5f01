//! The fake Crego: `GET /v1/lms/line-details/` (filtered by `updated_at__gte`, oldest first,
//! page-number paginated as design §5), `GET /v1/crm/leads/{id}/` and
//! `GET /v1/crm/leads/{id}/programs/` (the documented shape), the records, and a credit line's
//! drawdowns (`GET /v1/lms/loans/` and `/v1/lms/topups/`, an assumed shape: see
//! [`super::drawdowns`]). Bearer token required.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::gate::{Gate, Shared, gatekeeper, json_error, requests_handler, stats_handler};
use super::realism::Listed;
use super::spec::Tenant;
use crate::partners::http::Api;

pub fn router(shared: Arc<Shared>) -> Router {
    let gate = Gate {
        shared,
        api: Api::Crego,
    };
    Router::new()
        .route("/v1/lms/line-details/", get(line_details))
        .route("/v1/lms/records/", get(list_records).post(create_record))
        .route("/v1/lms/records/{id}/", get(one_record))
        .route("/v1/lms/loans/", get(list_loans))
        .route("/v1/lms/topups/", get(list_topups))
        .route("/v1/auth/token/", axum::routing::post(token))
        .route("/v1/auth/token/refresh/", axum::routing::post(refresh))
        .route("/v1/crm/leads/{id}/", get(lead))
        .route("/v1/crm/leads/{id}/programs/", get(programs))
        .route("/_sandbox/requests", get(requests_handler))
        .route("/_sandbox/stats", get(stats_handler))
        .layer(axum::middleware::from_fn_with_state(gate.clone(), gatekeeper))
        .with_state(gate)
}

fn param<T: std::str::FromStr>(q: &HashMap<String, String>, k: &str, default: T) -> Result<T, String> {
    match q.get(k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("invalid `{k}`: {v}")),
    }
}

/// `page`, `page_size` and the updated-since filter (by the tenant's name for it) of a list
/// request, or the 400 answer.
fn list_params(q: &HashMap<String, String>, tenant: &Tenant) -> Result<(u64, u64, (i64, String)), Box<Response>> {
    let bad = |e: String| Box::new(json_error(StatusCode::BAD_REQUEST, json!({"detail": e})));
    let page = param(q, "page", 1u64).map_err(bad)?;
    let page_size = param(q, "page_size", 20u64).map_err(bad)?;
    let since = param(q, &tenant.filters.updated_since, 0f64).map_err(bad)?;
    if page == 0 || page_size == 0 || page_size > 1000 {
        return Err(bad("page must be ≥ 1 and page_size 1..1000".into()));
    }
    Ok((page, page_size, ((since * 1_000_000.0).round() as i64, String::new())))
}

/// One page of `all` (which holds `count` items) in the list envelope of design §5. Only the page
/// is cloned: a book of 100 000 lines is served page by page without copying it.
fn paged<'a>(
    count: usize,
    all: impl Iterator<Item = &'a Value>,
    page: u64,
    page_size: u64,
    view: impl Fn(Value) -> Value,
) -> Response {
    let count = count as u64;
    let total_pages = count.div_ceil(page_size).max(1);
    if page > total_pages && count > 0 {
        return json_error(StatusCode::NOT_FOUND, json!({"detail": "Invalid page."}));
    }
    let results: Vec<Value> = all
        .into_iter()
        .skip(((page - 1) * page_size) as usize)
        .take(page_size as usize)
        .map(|v| view(v.clone()))
        .collect();
    Json(json!({
        "count": count, "current_page": page, "page_size": page_size, "total_pages": total_pages,
        "has_next": page < total_pages, "results": results,
    }))
    .into_response()
}

/// `GET /v1/lms/line-details/`: filtered by `updated_at__gte`, oldest first.
async fn line_details(State(gate): State<Gate>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (page, page_size, from) = match list_params(&q, &gate.shared.config.tenant) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (resp, padding) = {
        let mut s = gate.shared.lock();
        if s.endless_pages {
            // Misbehaving: the filter ignored, the same first page, and always more to come.
            let results: Vec<Value> = s
                .line_index
                .values()
                .take(page_size as usize)
                .map(|(lead, i)| s.programs[lead][*i]["line_detail"].clone())
                .collect();
            return Json(json!({"count": 1_000_000, "current_page": page, "page_size": page_size,
                "total_pages": 1_000_000, "has_next": true, "results": results}))
            .into_response();
        }
        s.touch_while_listing(Listed::LineDetails, &from, ((page - 1) * page_size) as usize);
        let count = s.line_index.range(from.clone()..).count();
        let all = s
            .line_index
            .range(from..)
            .map(|(_, (lead, i))| &s.programs[lead][*i]["line_detail"]);
        let tenant = &gate.shared.config.tenant;
        (
            paged(count, all, page, page_size, |l| listed_line(tenant, l)),
            s.page_padding,
        )
    };
    if padding == 0 {
        return resp;
    }
    // Oversized: the same page with a padding member.
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["padding"] = Value::String("x".repeat(padding));
    Json(v).into_response()
}

async fn lead(State(gate): State<Gate>, Path(id): Path<String>) -> Response {
    match gate.shared.lock().leads.get(&id) {
        Some(l) => Json(l.clone()).into_response(),
        None => not_found(&gate.shared.config.tenant),
    }
}

async fn programs(State(gate): State<Gate>, Path(id): Path<String>) -> Response {
    match gate.shared.lock().programs.get(&id) {
        Some(p) => Json(Value::Array(p.clone())).into_response(),
        None => not_found(&gate.shared.config.tenant),
    }
}

/// `GET /v1/lms/records/`: filtered by `type`, `utr`, `status` and `updated_at__gte`, oldest first.
async fn list_records(State(gate): State<Gate>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (page, page_size, from) = match list_params(&q, &gate.shared.config.tenant) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let mut s = gate.shared.lock();
    s.touch_while_listing(Listed::Records, &from, ((page - 1) * page_size) as usize);
    let tenant = &gate.shared.config.tenant;
    let f = &tenant.filters;
    // (the tenant's filter name, the record key it filters on)
    let filters = [
        (f.record_type.as_str(), "type"),
        (f.utr.as_str(), "utr"),
        ("status", "status"),
        ("account", "account"),
    ];
    let matches = |r: &Value| {
        filters
            .iter()
            .all(|(name, k)| q.get(*name).is_none_or(|want| r[*k].as_str() == Some(want.as_str())))
    };
    let all: Vec<&Value> = s
        .record_index
        .range(from..)
        .map(|((_, id), _)| &s.records[id])
        .filter(|r| matches(r))
        .collect();
    paged(all.len(), all.into_iter(), page, page_size, |r| {
        listed_record(tenant, r)
    })
}

/// `GET /v1/lms/loans/?account=`: one credit line's loans.
async fn list_loans(State(gate): State<Gate>, Query(q): Query<HashMap<String, String>>) -> Response {
    list_drawdowns(&gate, q, "loan")
}

/// `GET /v1/lms/topups/?account=`: one credit line's topups.
async fn list_topups(State(gate): State<Gate>, Query(q): Query<HashMap<String, String>>) -> Response {
    list_drawdowns(&gate, q, "topup")
}

/// One line's drawdowns of `kind`, oldest disbursal first, in the records' envelope. `account`
/// is required (the documents name no list across lines); an unknown one has none. The
/// updated-since filter is not applied: nothing says these lists take it, so it is dropped
/// before the paging parameters are read rather than refused when malformed.
fn list_drawdowns(gate: &Gate, mut q: HashMap<String, String>, kind: &str) -> Response {
    let tenant = &gate.shared.config.tenant;
    q.remove(&tenant.filters.updated_since);
    let (page, page_size, _) = match list_params(&q, tenant) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(account) = q.get("account").filter(|a| !a.is_empty()) else {
        return json_error(StatusCode::BAD_REQUEST, json!({"detail": "account is required"}));
    };
    let s = gate.shared.lock();
    let listed = s.listed_drawdowns(account, kind);
    paged(listed.len(), listed.into_iter(), page, page_size, |d| d)
}

/// A line item as the tenant lists it: with its links expanded, or the ids as design §5 assumes.
fn listed_line(tenant: &Tenant, mut line: Value) -> Value {
    if tenant.expanded_links
        && let Some(m) = line.as_object_mut()
    {
        let lead = m.remove("lead_id").unwrap_or_default();
        let bp = m.remove("borrower_program_id").unwrap_or_default();
        m.insert("lead".into(), json!({"id": lead}));
        m.insert("borrower_program".into(), json!({"id": bp}));
    }
    line
}

/// A record as the tenant lists it: `account` expanded, or the id.
fn listed_record(tenant: &Tenant, mut record: Value) -> Value {
    if tenant.expanded_links {
        let account = record["account"].take();
        record["account"] = json!({"id": account});
    }
    record
}

/// The answer to a read of something Crego does not have, as the tenant gives it.
fn not_found(tenant: &Tenant) -> Response {
    if tenant.unknown_is_400 {
        json_error(
            StatusCode::BAD_REQUEST,
            json!({"detail": "Lead matching query does not exist."}),
        )
    } else {
        json_error(StatusCode::NOT_FOUND, json!({"detail": "Not found."}))
    }
}

/// `POST /v1/lms/records/`: the record shape's writable fields; a duplicate `utr` is a 400.
async fn create_record(State(gate): State<Gate>, body: Bytes) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, json!({"detail": "JSON object expected"}));
    };
    let mut errors = serde_json::Map::new();
    for k in ["type", "account", "amount", "date", "utr"] {
        if body.get(k).is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
            errors.insert(k.into(), json!(["This field is required."]));
        }
    }
    if body
        .get("amount")
        .is_some_and(|a| crate::money::from_json(a).is_none_or(|d| d <= rust_decimal::Decimal::ZERO))
    {
        errors.insert("amount".into(), json!(["A positive amount is required."]));
    }
    if body.get("date").is_some_and(|d| !d.is_number()) {
        errors.insert("date".into(), json!(["Epoch seconds expected."]));
    }
    let mut s = gate.shared.lock();
    if let Some(account) = body.get("account").and_then(Value::as_str)
        && s.find_program(account).is_none()
    {
        errors.insert("account".into(), json!([format!("Unknown account {account}.")]));
    }
    if let Some(utr) = body.get("utr").and_then(Value::as_str)
        && s.records.values().any(|r| r["utr"] == utr)
    {
        errors.insert("utr".into(), json!(["record with this utr already exists."]));
    }
    if !errors.is_empty() {
        return json_error(StatusCode::BAD_REQUEST, Value::Object(errors));
    }
    let mut record: Value = serde_json::from_str(super::spec::RECORD_EXAMPLE).expect("record fixture parses");
    for (k, v) in ["id", "ref_id"].iter().map(|k| (*k, Value::Null)) {
        record[k] = v;
    }
    for (k, v) in body {
        record[k.as_str()] = v;
    }
    record["status"] = json!("processed");
    record["received_amount"] = record["amount"].clone();
    record["remaining_amount"] = json!(0);
    let created = s.add_record(record);
    (StatusCode::CREATED, Json(created)).into_response()
}

/// `POST /v1/auth/token/ {username, password}` → `{access, refresh, expires_in}`.
async fn token(State(gate): State<Gate>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let cfg = &gate.shared.config;
    if v["username"] != cfg.crego_user.as_str() || v["password"] != cfg.crego_password.as_str() {
        return json_error(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "No active account found with the given credentials"}),
        );
    }
    let answer = gate
        .shared
        .lock()
        .issue_token("crego", cfg.token_ttl_secs, true, &cfg.tenant);
    Json(answer).into_response()
}

/// `POST /v1/auth/token/refresh/ {refresh}` → `{access, refresh, expires_in}`.
async fn refresh(State(gate): State<Gate>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = gate.shared.lock();
    let known = v["refresh"]
        .as_str()
        .is_some_and(|r| s.refresh_tokens.remove(r).is_some());
    if !known {
        return json_error(
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Token is invalid or expired"}),
        );
    }
    let cfg = &gate.shared.config;
    Json(s.issue_token("crego", cfg.token_ttl_secs, true, &cfg.tenant)).into_response()
}

async fn one_record(State(gate): State<Gate>, Path(id): Path<String>) -> Response {
    match gate.shared.lock().records.get(&id) {
        Some(r) => Json(r.clone()).into_response(),
        None => json_error(StatusCode::NOT_FOUND, json!({"detail": "Not found."})),
    }
}
