//! The fake Crego: `GET /v1/lms/line-details/` (filtered by `updated_at__gte`, oldest first,
//! page-number paginated as design §5), `GET /v1/crm/leads/{id}/` and
//! `GET /v1/crm/leads/{id}/programs/` (the documented shape). Bearer token required.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{Gate, Shared, gatekeeper, json_error, requests_handler};
use crate::http::Api;

pub fn router(shared: Arc<Shared>) -> Router {
    let gate = Gate {
        shared,
        api: Api::Crego,
    };
    Router::new()
        .route("/v1/lms/line-details/", get(line_details))
        .route("/v1/crm/leads/{id}/", get(lead))
        .route("/v1/crm/leads/{id}/programs/", get(programs))
        .route("/_sandbox/requests", get(requests_handler))
        .layer(axum::middleware::from_fn_with_state(gate.clone(), gatekeeper))
        .with_state(gate)
}

fn param<T: std::str::FromStr>(q: &HashMap<String, String>, k: &str, default: T) -> Result<T, String> {
    match q.get(k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("invalid `{k}`: {v}")),
    }
}

async fn line_details(State(gate): State<Gate>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (page, page_size, since) = match (
        param(&q, "page", 1u64),
        param(&q, "page_size", 20u64),
        param(&q, "updated_at__gte", 0f64),
    ) {
        (Ok(p), Ok(s), Ok(g)) => (p, s, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return json_error(StatusCode::BAD_REQUEST, json!({"detail": e}));
        }
    };
    if page == 0 || page_size == 0 || page_size > 1000 {
        return json_error(
            StatusCode::BAD_REQUEST,
            json!({"detail": "page must be ≥ 1 and page_size 1..1000"}),
        );
    }
    let s = gate.shared.lock();
    let from = ((since * 1_000_000.0).round() as i64, String::new());
    let count = s.line_index.range(from.clone()..).count() as u64;
    let total_pages = count.div_ceil(page_size).max(1);
    if page > total_pages && count > 0 {
        return json_error(StatusCode::NOT_FOUND, json!({"detail": "Invalid page."}));
    }
    let results: Vec<Value> = s
        .line_index
        .range(from..)
        .skip(((page - 1) * page_size) as usize)
        .take(page_size as usize)
        .map(|(_, (lead, i))| s.programs[lead][*i]["line_detail"].clone())
        .collect();
    Json(json!({
        "count": count, "current_page": page, "page_size": page_size, "total_pages": total_pages,
        "has_next": page < total_pages, "results": results,
    }))
    .into_response()
}

async fn lead(State(gate): State<Gate>, Path(id): Path<String>) -> Response {
    match gate.shared.lock().leads.get(&id) {
        Some(l) => Json(l.clone()).into_response(),
        None => json_error(StatusCode::NOT_FOUND, json!({"detail": "Not found."})),
    }
}

async fn programs(State(gate): State<Gate>, Path(id): Path<String>) -> Response {
    match gate.shared.lock().programs.get(&id) {
        Some(p) => Json(Value::Array(p.clone())).into_response(),
        None => json_error(StatusCode::NOT_FOUND, json!({"detail": "Not found."})),
    }
}
