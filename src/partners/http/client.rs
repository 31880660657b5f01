//! The client of one partner API: authentication (static or exchanged tokens), the gate (rate
//! ceiling, concurrency, shutdown), timeouts, retries with backon honouring `Retry-After`, and
//! counters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::error::{Api, ApiError, Safety, read_capped, redirect_target, retry_after};
use super::gate::Gate;
use super::token;
use crate::config::ApiLimits;
use crate::telemetry;

/// How requests authenticate.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`
    Bearer(SecretString),
    /// A custom header carrying the token as is (Credgenics `authenticationtoken`).
    Header(&'static str, SecretString),
    /// A token obtained from credentials and renewed before expiry; `header` is `None` for
    /// `Authorization: Bearer`.
    Managed {
        header: Option<&'static str>,
        manager: Arc<token::TokenManager>,
    },
}

/// Counters of one client, for summaries and metrics.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    by_status: Mutex<BTreeMap<String, u64>>,
}

impl ApiStats {
    fn count_status(&self, api: Api, status: &str) {
        metrics::counter!(telemetry::metric::HTTP_REQUESTS, "api" => api.name(), "status" => status.to_string())
            .increment(1);
        let mut m = self.by_status.lock().expect("stats lock");
        *m.entry(status.to_string()).or_default() += 1;
    }

    pub fn by_status(&self) -> BTreeMap<String, u64> {
        self.by_status.lock().expect("stats lock").clone()
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

impl Response {
    pub fn json(&self, api: Api) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::BadBody {
            api,
            status: self.status.as_u16(),
            message: e.to_string(),
        })
    }
}

/// A rate-limited, retrying HTTP client for one partner API.
pub struct ApiClient {
    api: Api,
    base: String,
    http: reqwest::Client,
    gate: Arc<Gate>,
    max_retries: usize,
    max_response_bytes: u64,
    max_retry_after: Duration,
    auth: Auth,
    extra_query: Vec<(String, String)>,
    pub stats: Arc<ApiStats>,
}

impl ApiClient {
    /// A client authenticating with `credential`: a static token in `static_header` (None:
    /// `Authorization: Bearer`), or tokens exchanged from credentials, sent the same way.
    pub fn with_credential(
        api: Api,
        base_url: &url::Url,
        limits: &ApiLimits,
        credential: &crate::config::Credential,
        static_header: Option<&'static str>,
        cancel: CancellationToken,
    ) -> Result<Self, reqwest::Error> {
        let gate = Arc::new(Gate::new(api, limits, cancel));
        let auth = match credential {
            crate::config::Credential::Static(t) => match static_header {
                Some(h) => Auth::Header(h, t.clone()),
                None => Auth::Bearer(t.clone()),
            },
            crate::config::Credential::Exchange {
                id,
                secret,
                token_path,
                token_url,
                refresh_path,
                lifetime_secs,
            } => {
                let base = base_url.as_str().trim_end_matches('/');
                let exchange = match refresh_path {
                    Some(r) => token::Exchange::Password {
                        token_url: format!("{base}{token_path}"),
                        refresh_url: format!("{base}{r}"),
                        username: id.clone(),
                        password: secret.clone(),
                    },
                    None => token::Exchange::ClientCredentials {
                        token_url: token_url
                            .as_ref()
                            .map(|u| u.to_string())
                            .unwrap_or_else(|| format!("{base}{token_path}")),
                        client_id: id.clone(),
                        client_secret: secret.clone(),
                        lifetime_secs: *lifetime_secs,
                    },
                };
                let manager = token::TokenManager::new(
                    api,
                    exchange,
                    http_client(limits)?,
                    gate.clone(),
                    limits.max_response_bytes,
                    limits.max_retry_after,
                );
                Auth::Managed {
                    header: static_header,
                    manager: Arc::new(manager),
                }
            }
        };
        Self::new(api, base_url, limits, auth, gate)
    }

    /// Token exchanges made so far (0 for a static token).
    pub fn tokens_issued(&self) -> u64 {
        match &self.auth {
            Auth::Managed { manager, .. } => manager.issued.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    fn new(
        api: Api,
        base_url: &url::Url,
        limits: &ApiLimits,
        auth: Auth,
        gate: Arc<Gate>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            api,
            base: base_url.as_str().trim_end_matches('/').to_string(),
            http: http_client(limits)?,
            gate,
            max_retries: limits.max_retries,
            max_response_bytes: limits.max_response_bytes,
            max_retry_after: limits.max_retry_after,
            auth,
            extra_query: Vec::new(),
            stats: Arc::new(ApiStats::default()),
        })
    }
}

impl ApiClient {
    /// Adds a query parameter to every request (Credgenics `company_id`).
    pub fn with_query(mut self, key: &str, value: &str) -> Self {
        self.extra_query.push((key.to_string(), value.to_string()));
        self
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// The company learned from the token answer (no `company_id` configured), once a token
    /// was had.
    pub fn learned_company(&self) -> Option<String> {
        match &self.auth {
            Auth::Managed { manager, .. } => manager.company(),
            _ => None,
        }
    }

    /// With exchanged credentials, name on every request the company the token answer gives
    /// (no `company_id` configured; the answer must name exactly one).
    pub fn learn_company(self) -> Self {
        if let Auth::Managed { manager, .. } = &self.auth {
            manager.learn_company();
        }
        self
    }

    /// Sends one logical request, retrying as its safety allows.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        safety: Safety,
    ) -> Result<Response, ApiError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("JSON values serialise"));
        let used = Mutex::new(None);
        let first = self.send_with(&method, path, query, &body, safety, &used).await;
        // A 401 proves nothing was done: renew the token (once, however many requests saw it)
        // and send again.
        if let (Err(ApiError::Unauthorized { status: 401, .. }), Auth::Managed { manager, .. }) = (&first, &self.auth) {
            let token = used.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(token) = token {
                manager.invalidate(&token).await;
            }
            let again = self.send_with(&method, path, query, &body, safety, &used).await;
            self.refused(&again, method.as_str(), path);
            return again;
        }
        self.refused(&first, method.as_str(), path);
        first
    }

    /// A refused credential is logged and counted where it ends a request (the run stops on it).
    fn refused(&self, result: &Result<Response, ApiError>, method: &str, path: &str) {
        if let Err(ApiError::Unauthorized { status, .. }) = result {
            telemetry::events::CredentialRefused {
                api: self.api.name(),
                status: *status,
                method,
                path,
            }
            .emit();
        }
    }

    async fn send_with(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: &Option<Vec<u8>>,
        safety: Safety,
        used: &Mutex<Option<SecretString>>,
    ) -> Result<Response, ApiError> {
        let attempt = || async {
            // A retry after shutdown was asked for would be a request nobody waits for.
            if self.gate.cancelled() {
                return Err(ApiError::Cancelled { api: self.api });
            }
            self.attempt(method.clone(), path, query, body.clone(), used).await
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.max_retries)
            .with_jitter();
        attempt
            .retry(backoff)
            // Cut short by shutdown; the next attempt then refuses to start.
            .sleep({
                let gate = self.gate.clone();
                move |d| {
                    let gate = gate.clone();
                    async move {
                        let _ = gate.pause(d).await;
                    }
                }
            })
            .when(|e: &ApiError| e.retryable(safety))
            .adjust(|e: &ApiError, d| match e.retry_after() {
                // Honoured up to a cap: a partner asking for an hour must not hang a run.
                Some(ra) => Some(ra.min(self.max_retry_after)),
                None => d,
            })
            .notify(|e: &ApiError, d| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                if matches!(e, ApiError::RateLimited { .. }) {
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                telemetry::events::HttpRetry {
                    api: self.api.name(),
                    method: method.as_str(),
                    path,
                    error: e,
                    delay: d,
                }
                .emit();
            })
            .await
    }

    async fn attempt(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        used: &Mutex<Option<SecretString>>,
    ) -> Result<Response, ApiError> {
        let api = self.api;
        let _permit = self.gate.permit().await?;
        // The token is taken once the request holds its slot — the wait for it is bounded by
        // `max_in_flight` rate intervals, far inside a token's renewal margin — and before the
        // limiter: an exchange paces itself, and the request then goes out at its own slot.
        let token = match &self.auth {
            Auth::Managed { manager, .. } => {
                let t = manager.token().await.map_err(not_sent)?;
                *used.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
                Some(t)
            }
            _ => None,
        };
        let token = token.as_ref();
        self.gate.pace().await?;
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        let mut q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        q.extend(self.extra_query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let learned = match &self.auth {
            Auth::Managed { manager, .. } => manager.company(),
            _ => None,
        };
        if let Some(company) = &learned {
            q.push(("company_id", company));
        }
        if !q.is_empty() {
            req = req.query(&q);
        }
        req = match &self.auth {
            Auth::Bearer(t) => req.header(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Bearer {}", t.expose_secret())),
            ),
            Auth::Header(name, t) => req.header(HeaderName::from_static(name), sensitive(t.expose_secret())),
            Auth::Managed { header, .. } => {
                let t = token.map(|t| t.expose_secret().to_string()).unwrap_or_default();
                match header {
                    Some(name) => req.header(HeaderName::from_static(name), sensitive(&t)),
                    None => req.header(reqwest::header::AUTHORIZATION, sensitive(&format!("Bearer {t}"))),
                }
            }
        };
        if let Some(body) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let sent = std::time::Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.stats.count_status(api, "error");
                telemetry::events::request_took(api.name(), sent.elapsed());
                return Err(transport_error(api, &e));
            }
        };
        telemetry::events::request_took(api.name(), sent.elapsed());
        let status = resp.status();
        self.stats.count_status(api, status.as_str());
        let retry_after = retry_after(resp.headers());
        let location = redirect_target(resp.headers());
        let body = match read_capped(resp, self.max_response_bytes).await {
            Ok(b) => b,
            Err(message) if status.is_success() => {
                return Err(ApiError::BadBody {
                    api,
                    status: status.as_u16(),
                    message,
                });
            }
            Err(_) => bytes::Bytes::new(),
        };
        match status.as_u16() {
            200..=299 => Ok(Response { status, body }),
            s @ 300..=399 => Err(ApiError::Redirected {
                api,
                status: s,
                location,
            }),
            401 | 403 => Err(ApiError::Unauthorized {
                api,
                status: status.as_u16(),
            }),
            404 => Err(ApiError::NotFound { api }),
            429 => Err(ApiError::RateLimited { api, retry_after }),
            s @ 500..=599 => Err(ApiError::Server {
                api,
                status: s,
                retry_after,
            }),
            s => Err(ApiError::Rejected {
                api,
                status: s,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }
}

fn http_client(limits: &ApiLimits) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(limits.connect_timeout)
        .timeout(limits.timeout)
        .user_agent(concat!("crego-credgenics-sync/", env!("CARGO_PKG_VERSION")))
        .build()
}

fn sensitive(v: &str) -> HeaderValue {
    let mut h = HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    h.set_sensitive(true);
    h
}

fn transport_error(api: Api, e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::Timeout { api }
    } else if e.is_connect() {
        ApiError::Connect {
            api,
            message: root_cause(e),
        }
    } else {
        ApiError::Transport {
            api,
            message: root_cause(e),
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A failure to get a token happened before the request was sent: whatever the token endpoint
/// answered (5xx, timeout, a 200 without a token), the write itself is provably not made — never
/// "in doubt", never "rejected". A refused credential, a redirect and a shutdown keep their own
/// meaning (each stops the run).
fn not_sent(e: ApiError) -> ApiError {
    if e.stops_run() {
        return e;
    }
    ApiError::NoToken {
        api: e.api(),
        message: e.to_string(),
    }
}
