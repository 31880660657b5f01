//! The operators' listener (`[admin] listen`): `/healthz` (the process is up), `/readyz` (the
//! state answers and no stream is stuck) and `/metrics` (Prometheus text, the gauges read from
//! the state at each scrape). Apart from the webhook's so a scrape or a probe never shares the
//! public port, and so the metrics are not reachable from the internet.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::clock::Clock;
use crate::config::Config;
use crate::store::{Direction, LedgerState, LoanState, Store};

/// What the admin routes read.
#[derive(Clone)]
pub struct AdminState {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub clock: Clock,
}

pub fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

/// Connections the admin listener serves at once (a scraper and a probe or two; more wait in the
/// backlog), and how long one may sit idle.
const ADMIN_CONNECTIONS: usize = 32;
const ADMIN_IDLE: std::time::Duration = std::time::Duration::from_secs(15);

/// Serves until `shutdown` completes, behind the same guard as the webhook's listener.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = super::listener::Guarded::new(listener, ADMIN_CONNECTIONS, ADMIN_IDLE);
    axum::serve(listener, admin_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Why the daemon is not ready, if it is not: the state does not answer, or a stream has not been
/// read to its end for longer than `daemon.stuck_after_secs`.
pub fn not_ready(config: &Config, store: &Store, now: f64) -> Option<String> {
    let streams = match store.streams() {
        Ok(s) => s,
        Err(e) => return Some(format!("state does not answer: {e}")),
    };
    let limit = config.daemon.stuck_after_secs;
    let stuck: Vec<String> = streams
        .iter()
        .filter_map(|s| {
            let age = now - s.checked_at.unwrap_or(0.0);
            (age > limit).then(|| {
                format!(
                    "cursor `{}` stuck: not read to its end for {age:.0} s (limit {limit:.0} s)",
                    s.stream
                )
            })
        })
        .collect();
    (!stuck.is_empty()).then(|| stuck.join("; "))
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let now = state.clock.now().as_millisecond() as f64 / 1000.0;
    let verdict = tokio::task::spawn_blocking(move || not_ready(&state.config, &state.store, now))
        .await
        .unwrap_or_else(|e| Some(format!("the state task failed: {e}")));
    match verdict {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response(),
    }
}

/// Sets the gauges read from the state, then renders every metric.
async fn metrics_text(State(state): State<AdminState>) -> Response {
    let now = state.clock.now().as_millisecond() as f64 / 1000.0;
    // The state's reads run on a blocking thread, off the runtime's workers.
    let _ = tokio::task::spawn_blocking(move || state_gauges(&state.store, now)).await;
    match crate::telemetry::prometheus() {
        Some(handle) => {
            handle.run_upkeep();
            ([("content-type", "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable\n").into_response(),
    }
}

/// The gauges read from the state: loans by state, ledger rows by direction and state, cursor lag.
fn state_gauges(store: &Store, now: f64) {
    use crate::telemetry::metric;
    if let Ok(counts) = store.loan_counts() {
        for s in LoanState::ALL.map(LoanState::as_str) {
            metrics::gauge!(metric::LOANS, "state" => s).set(counts.get(s).copied().unwrap_or(0) as f64);
        }
    }
    if let Ok(counts) = store.ledger_counts() {
        let states = LedgerState::ALL.map(LedgerState::as_str);
        for d in Direction::ALL.map(Direction::as_str) {
            for s in states.iter().copied().chain([LedgerState::IGNORED]) {
                let n = counts.get(&(d.to_string(), s.to_string())).copied().unwrap_or(0);
                metrics::gauge!(metric::LEDGER_ROWS, "direction" => d, "state" => s).set(n as f64);
            }
        }
    }
    if let Ok(Some(run)) = store.reconcile_last() {
        crate::telemetry::events::reconcile_gauges(&crate::flows::reconcile::summary(&run));
    }
    if let Ok(streams) = store.streams() {
        for s in streams {
            metrics::gauge!(metric::CURSOR_LAG, "stream" => s.stream).set(now - s.checked_at.unwrap_or(0.0));
        }
    }
}
