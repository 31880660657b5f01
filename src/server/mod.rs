//! The daemon's HTTP listeners. `webhook.listen` faces Credgenics: the `payment` webhook
//! (`POST /webhooks/credgenics`) and `/healthz`, behind a connection cap and idle timeouts
//! (`listener`). A webhook is authenticated by `X-Webhook-Token` or `?token=` (constant-time
//! compare), limited to 1 MiB, and committed to the state before it is answered 200.
//! `[admin] listen` (loopback by default) faces the operators: `/metrics`, `/healthz`,
//! `/readyz` ([`admin`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

mod admin;
mod listener;

pub use admin::{AdminState, admin_router, not_ready, serve_admin};

use crate::clock::Clock;
use crate::config::Config;
use crate::flows::recoveries::{PaymentFate, take_webhook_payment};
use crate::store::Store;
use crate::telemetry::events::{self, WebhookOutcome};

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
        .route(
            WEBHOOK_PATH,
            post(webhook)
                .layer(DefaultBodyLimit::max(BODY_LIMIT))
                // The token is checked from the headers and query before any byte of the body is
                // read: a stranger cannot make the daemon buffer bodies.
                .layer(axum::middleware::from_fn_with_state(state.clone(), require_token)),
        )
        // A load balancer in front of the webhook checks it here; the rest is on the admin listener.
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let webhook = &state.config.webhook;
    let listener = listener::Guarded::new(listener, webhook.max_connections, webhook.idle_timeout);
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

/// How long a webhook's body may take to arrive once its headers have.
pub const BODY_READ_TIMEOUT: std::time::Duration = listener::BODY_TIME;

/// Refuses a webhook without the right token before its body is read.
async fn require_token(
    State(state): State<ServerState>,
    Query(query): Query<HashMap<String, String>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !authorised(&state.token, req.headers(), &query) {
        events::WebhookAnswered {
            outcome: WebhookOutcome::Unauthorised,
            reason: None,
        }
        .emit();
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong webhook token"}),
        );
    }
    next.run(req).await
}

async fn webhook(State(state): State<ServerState>, body: axum::body::Body) -> Response {
    // A body that trickles in (or never ends) is given up on, not waited for.
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            events::webhook_refused("body_too_large", 413);
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "body over 1 MiB, or broken off"}),
            );
        }
        Err(_) => {
            events::webhook_refused("body_timeout", 408);
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": "the body did not arrive in time"}),
            );
        }
    };
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        events::webhook_refused("body_not_json", 400);
        return answer(StatusCode::BAD_REQUEST, json!({"error": "body is not JSON"}));
    };
    let kind = event["event"].as_str().unwrap_or_default();
    if kind != "payment" {
        events::webhook_ignored(kind);
        return answer(StatusCode::OK, json!({"status": "ignored"}));
    }
    let data = &event["data"];
    if !data.is_object() || data["loan_id"].is_null() {
        events::webhook_refused("no_loan_id", 400);
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "payment event without data.loan_id"}),
        );
    }
    // The state's fsync'd commit runs on a blocking thread, not on the runtime's workers (which
    // serve every other connection and job meanwhile).
    let text = String::from_utf8_lossy(&body).into_owned();
    let data = data.clone();
    let taken = tokio::task::spawn_blocking(move || {
        take_webhook_payment(&state.config, &state.store, &state.clock, &text, &data).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("the state task failed: {e}")));
    match taken {
        Ok(fate) => {
            let (outcome, reason) = match &fate {
                PaymentFate::Queued | PaymentFate::HistoryRequested => (WebhookOutcome::Stored, None),
                PaymentFate::Rejected(r) => (WebhookOutcome::Rejected, Some(r.as_str())),
                PaymentFate::Echo | PaymentFate::UnknownLoan => (WebhookOutcome::Ignored, None),
            };
            events::WebhookAnswered { outcome, reason }.emit();
            let body = match fate {
                PaymentFate::Queued => json!({"status": "stored"}),
                PaymentFate::HistoryRequested => {
                    json!({"status": "stored", "detail": "no reference: the loan's payment history will be read"})
                }
                PaymentFate::Rejected(reason) => {
                    json!({"status": "rejected", "detail": crate::telemetry::mask_digits(&reason)})
                }
                PaymentFate::Echo => json!({"status": "ignored", "detail": "pushed by this daemon"}),
                PaymentFate::UnknownLoan => json!({"status": "ignored", "detail": "loan not placed by this daemon"}),
            };
            answer(StatusCode::OK, body)
        }
        Err(e) => {
            // Not stored: answer 5xx so Credgenics delivers it again.
            events::webhook_store_failed(&e);
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "could not store the event"}),
            )
        }
    }
}
