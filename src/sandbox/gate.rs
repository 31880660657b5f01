//! The HTTP glue both fakes share: the shared state, the gate every request passes (token,
//! rate limit, injected faults, the request log), control endpoints, and webhooks out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::partners::http::Api;

use super::spec::*;
use super::state::*;

/// Shared between the two fakes and the handle.
pub struct Shared {
    pub config: SandboxConfig,
    pub state: Mutex<SandboxState>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, SandboxState> {
        self.state.lock().expect("sandbox state lock")
    }
}

fn record(shared: &Shared, req: RecordedRequest) {
    let mut s = shared.lock();
    let st = s.stats.entry(req.api).or_default();
    st.requests += 1;
    st.writes += u64::from(req.is_write());
    st.rate_limited += u64::from(req.status == 429);
    if shared.config.keep_request_log {
        s.requests.push(req);
    }
}

/// Which fake a middleware guards, and how it authenticates.
#[derive(Clone)]
pub(crate) struct Gate {
    pub shared: Arc<Shared>,
    pub api: Api,
}

impl Gate {
    fn authorised(&self, headers: &axum::http::HeaderMap) -> bool {
        let cfg = &self.shared.config;
        let given = match self.api {
            Api::Crego => headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ")),
            Api::Credgenics => headers.get("authenticationtoken").and_then(|v| v.to_str().ok()),
        };
        let Some(given) = given else { return false };
        let static_token = match self.api {
            Api::Crego => &cfg.crego_token,
            Api::Credgenics => &cfg.credgenics_token,
        };
        given == static_token
            || self
                .shared
                .lock()
                .tokens
                .get(given)
                .is_some_and(|(api, expires)| *api == self.api.name() && Instant::now() < *expires)
    }

    /// Credgenics: a request made with an exchanged token must name the company it acts for
    /// (`?company_id=`, one of the client's `company_details[]`); any named company must be one.
    fn company_refusal(&self, headers: &axum::http::HeaderMap, query: &BTreeMap<String, String>) -> Option<String> {
        if self.api != Api::Credgenics {
            return None;
        }
        let companies = &self.shared.config.tenant.companies;
        match query.get("company_id") {
            Some(c) if companies.contains(c) => None,
            Some(c) => Some(format!("Unknown company_id {c}")),
            None => {
                let given = headers.get("authenticationtoken").and_then(|v| v.to_str().ok());
                let exchanged = given.is_some_and(|t| t != self.shared.config.credgenics_token);
                exchanged.then(|| "company_id is required with an access token".to_string())
            }
        }
    }

    fn rps(&self) -> Option<u32> {
        match self.api {
            Api::Crego => self.shared.config.crego_rps,
            Api::Credgenics => self.shared.config.credgenics_rps,
        }
    }
}

/// Middleware of both fakes: injected failures and the rate limit first, then the token, then the
/// handler; every request is recorded with the status it got.
pub(crate) async fn gatekeeper(
    axum::extract::State(gate): axum::extract::State<Gate>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let is_control = path.starts_with("/_sandbox/") || path.starts_with("/recovery/_sandbox/");
    let is_token_endpoint = path.ends_with("/auth/token/")
        || path.ends_with("/auth/token/refresh/")
        || path.ends_with("/user/public/access-token");
    let mut rec = RecordedRequest {
        api: gate.api.name(),
        method: parts.method.to_string(),
        path,
        query,
        // Parsed only for the log: a benchmark without it should not pay for it.
        body: if bytes.is_empty() || !gate.shared.config.keep_request_log {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        },
        status: 0,
    };
    if is_control {
        return next
            .run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await;
    }
    let target = format!("{} {}", rec.method, rec.path);
    let (refused, delay) = {
        let mut s = gate.shared.lock();
        (
            s.gate(gate.api.name(), &target, gate.rps()),
            s.delay.get(gate.api.name()).copied(),
        )
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let resp = if let Some(f) = refused
        .as_ref()
        .filter(|f| f.after_serving || f.kind != FaultKind::Status)
    {
        let served = if f.after_serving {
            Some(
                next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)))
                    .await,
            )
        } else {
            None
        };
        match f.kind {
            FaultKind::Status => {
                let status = axum::http::StatusCode::from_u16(f.status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
                (
                    status,
                    axum::Json(serde_json::json!({"message": "sandbox: answer lost"})),
                )
                    .into_response()
            }
            FaultKind::Stall(d) => {
                tokio::time::sleep(d).await;
                served.unwrap_or_else(|| {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "sandbox: stalled").into_response()
                })
            }
            FaultKind::Reset => {
                let broken = futures::stream::once(async {
                    Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "sandbox reset",
                    ))
                });
                let mut r = axum::response::Response::new(axum::body::Body::from_stream(broken));
                *r.status_mut() = axum::http::StatusCode::OK;
                r
            }
            FaultKind::Malformed => (axum::http::StatusCode::OK, "{\"results\": [not json").into_response(),
        }
    } else if let Some(f) = refused {
        let mut r = (
            axum::http::StatusCode::from_u16(f.status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(serde_json::json!({"message": "sandbox: injected failure or rate limit"})),
        )
            .into_response();
        if let Some(s) = f.retry_after {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        if (300..400).contains(&f.status)
            && let Some(to) = gate.shared.lock().redirect_to.clone()
            && let Ok(v) = axum::http::HeaderValue::from_str(&to)
        {
            r.headers_mut().insert(axum::http::header::LOCATION, v);
        }
        r
    } else if let Some((status, retry_after)) = is_token_endpoint
        .then(|| gate.shared.lock().token_refusal(gate.api.name()))
        .flatten()
    {
        let mut r = (
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::SERVICE_UNAVAILABLE),
            axum::Json(serde_json::json!({"message": "sandbox (realistic): token endpoint busy"})),
        )
            .into_response();
        if let Some(s) = retry_after {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        r
    } else if !is_token_endpoint && !gate.authorised(&parts.headers) {
        let body = match gate.api {
            Api::Crego => serde_json::json!({"detail": "Authentication credentials were not provided or are invalid."}),
            Api::Credgenics => serde_json::json!({"message": "Unauthorized"}),
        };
        (axum::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    } else if let Some(message) = (!is_token_endpoint)
        .then(|| gate.company_refusal(&parts.headers, &rec.query))
        .flatten()
    {
        (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"message": message})),
        )
            .into_response()
    } else {
        next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await
    };
    rec.status = resp.status().as_u16();
    record(&gate.shared, rec);
    resp
}

/// `GET /_sandbox/stats`: the counters of this fake, for benchmarks that run the sandbox as a process.
pub(crate) async fn stats_handler(axum::extract::State(gate): axum::extract::State<Gate>) -> axum::Json<ServedStats> {
    let s = gate.shared.lock();
    axum::Json(s.stats.get(gate.api.name()).cloned().unwrap_or_default())
}

/// `GET /_sandbox/requests`: the request log, for tests that run the daemon as a process.
pub(crate) async fn requests_handler(
    axum::extract::State(gate): axum::extract::State<Gate>,
) -> axum::Json<Vec<RecordedRequest>> {
    let s = gate.shared.lock();
    axum::Json(
        s.requests
            .iter()
            .filter(|r| r.api == gate.api.name())
            .cloned()
            .collect(),
    )
}

pub(crate) fn json_error(status: axum::http::StatusCode, body: Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(body)).into_response()
}

/// The documented `payment` webhook body for one payment-history entry.
pub fn payment_webhook(loan_id: &str, payment: &Value) -> Value {
    serde_json::json!({
        "event": "payment",
        "data": {
            "loan_id": loan_id,
            "amount_recovered": payment["amount_recovered"],
            "final_status": payment["final_status"],
            "recovery_method": payment["recovery_method"],
            "payment_method": payment["payment_method"],
            "payment_mode": payment["payment_mode"],
            "reference_number": payment["payment_reference_number"],
            "closure_with": payment.get("closure_with").cloned().unwrap_or(Value::String(String::new())),
            "recovery_date": payment["recovery_date"],
            "allocation_month": payment["allocation_month"],
            "author": payment["author"],
        },
        "created": payment["created"],
    })
}

/// Posts one webhook to the configured target, if any, and records the outcome.
pub(crate) async fn emit_webhook(shared: &Shared, body: Value) {
    let Some((url, token)) = shared.lock().webhook_target.clone() else {
        return;
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("webhook client");
    let status = match client
        .post(&url)
        .header("X-Webhook-Token", token)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    shared.lock().webhooks.push((body, status));
}

/// The documented 400 answer of a body that fails validation (CG:498–518).
pub(crate) fn validation_failed(errors: Map<String, Value>) -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        json!({"message": "Data Validation Failed", "output": {"errors": errors}}),
    )
}

/// The JSON body, or the 400 answer for one that is not JSON.
pub(crate) fn parse_body(body: &Bytes) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(json_error(
            StatusCode::BAD_REQUEST,
            json!({"message": format!("Invalid JSON body: {e}")}),
        ))
    })
}
