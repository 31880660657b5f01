//! The daemon's HTTP listener: the Credgenics `payment` webhook (`POST /webhooks/credgenics`) and
//! `/healthz`. A webhook is authenticated by `X-Webhook-Token` or `?token=` (constant-time
//! compare), limited to 1 MiB, and committed to the state before it is answered 200.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use crate::sync::pull_recoveries::{PaymentFate, take_webhook_payment};

/// Path of the webhook, fixed by the design.
pub const WEBHOOK_PATH: &str = "/webhooks/credgenics";
/// Largest webhook body taken.
pub const BODY_LIMIT: usize = 1 << 20;

#[derive(Clone)]
pub struct ServerState {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub clock: Clock,
    pub token: SecretString,
}

pub fn router(state: ServerState) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(webhook).layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn authorised(token: &SecretString, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    let given = headers
        .get("x-webhook-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| query.get("token").map(String::as_str));
    match given {
        Some(g) => bool::from(g.as_bytes().ct_eq(token.expose_secret().as_bytes())),
        None => false,
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn webhook(
    State(state): State<ServerState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if !authorised(&state.token, &headers, &query) {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong webhook token"}),
        );
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST, json!({"error": "body is not JSON"}));
    };
    let kind = event["event"].as_str().unwrap_or_default();
    if kind != "payment" {
        tracing::debug!(event = "webhook_ignored", kind, "webhook event ignored");
        return answer(StatusCode::OK, json!({"status": "ignored"}));
    }
    let data = &event["data"];
    if !data.is_object() || data["loan_id"].is_null() {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "payment event without data.loan_id"}),
        );
    }
    let text = String::from_utf8_lossy(&body);
    match take_webhook_payment(&state.config, &state.store, &state.clock, &text, data) {
        Ok(fate) => {
            let status = match fate {
                PaymentFate::Queued => "accepted",
                PaymentFate::Echo => "ignored: pushed by this daemon",
                PaymentFate::UnknownLoan => "ignored: loan not placed by this daemon",
            };
            answer(StatusCode::OK, json!({"status": status}))
        }
        Err(e) => {
            // Not stored: answer 5xx so Credgenics delivers it again.
            tracing::error!(event = "webhook_store_failed", error = %e, "webhook not stored");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "could not store the event"}),
            )
        }
    }
}
