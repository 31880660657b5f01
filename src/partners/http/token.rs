//! Credentials exchanged for expiring tokens, as both partners issue them: Crego's
//! username/password at a token endpoint (`{access, refresh, expires_in}`, refreshed with the
//! refresh token) and Credgenics' `client_id`/`client_secret` at `POST /user/public/access-token`
//! (the token in `api_key` or `access_token`). A token is renewed shortly before it expires and
//! once after a 401; concurrent requests share one renewal (a mutex around the exchange). Tokens
//! and secrets are `SecretString`s and never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::error::{Api, ApiError, read_capped, redirect_target, retry_after};
use super::gate::Gate;

/// How the credentials are exchanged.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// Crego: `POST token_url {username, password}`; `POST refresh_url {refresh}`.
    Password {
        token_url: String,
        refresh_url: String,
        username: String,
        password: SecretString,
    },
    /// Credgenics: `POST token_url {client_id, client_secret[, token_expiry_duration]}`.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        lifetime_secs: Option<u32>,
    },
}

struct Token {
    value: SecretString,
    refresh: Option<SecretString>,
    renew_at: Instant,
}

/// Tries of one token exchange against a busy endpoint, and the longest pause between them.
const RENEW_ATTEMPTS: u32 = 4;
const RENEW_MAX_PAUSE: Duration = Duration::from_secs(10);

pub struct TokenManager {
    api: Api,
    exchange: Exchange,
    http: reqwest::Client,
    /// The API's own gate: an exchange counts against the rate ceiling like any request, and
    /// its pauses end at shutdown.
    gate: Arc<Gate>,
    max_response_bytes: u64,
    max_retry_after: Duration,
    current: Mutex<Option<Token>>,
    /// No `company_id` is configured: take it from the answer's `company_details[]`, which must
    /// then name exactly one company.
    learn_company: std::sync::atomic::AtomicBool,
    /// The company learned from the last answer.
    company: std::sync::Mutex<Option<String>>,
    /// Exchanges made (log-free observability and tests).
    pub issued: AtomicU64,
}

impl TokenManager {
    pub fn new(
        api: Api,
        exchange: Exchange,
        http: reqwest::Client,
        gate: Arc<Gate>,
        max_response_bytes: u64,
        max_retry_after: Duration,
    ) -> Self {
        Self {
            api,
            exchange,
            http,
            gate,
            max_response_bytes,
            max_retry_after,
            current: Mutex::new(None),
            learn_company: std::sync::atomic::AtomicBool::new(false),
            company: std::sync::Mutex::new(None),
            issued: AtomicU64::new(0),
        }
    }

    /// Take the company from each answer's `company_details[]` (no `company_id` configured).
    pub fn learn_company(&self) {
        self.learn_company.store(true, Ordering::Relaxed);
    }

    /// The company learned from the token answer, when asked to learn it.
    pub fn company(&self) -> Option<String> {
        self.company.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A valid token, renewing it first when it is about to expire.
    pub async fn token(&self) -> Result<SecretString, ApiError> {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let refresh = current.as_ref().and_then(|t| t.refresh.clone());
        let fresh = match refresh {
            Some(r) => match self.renew_retrying(Some(&r)).await {
                Ok(t) => t,
                // A refused refresh token: log in again with the credentials.
                Err(ApiError::Unauthorized { .. }) | Err(ApiError::Rejected { .. }) => {
                    self.renew_retrying(None).await?
                }
                Err(e) => return Err(e),
            },
            None => self.renew_retrying(None).await?,
        };
        let value = fresh.value.clone();
        *current = Some(fresh);
        Ok(value)
    }

    /// After a 401 with `used`: the token is renewed on the next `token()`, once, however many
    /// requests saw the 401.
    pub async fn invalidate(&self, used: &SecretString) {
        let mut current = self.current.lock().await;
        if let Some(t) = current.as_mut()
            && t.value.expose_secret() == used.expose_secret()
        {
            t.renew_at = Instant::now();
        }
    }

    /// [`Self::renew`], tried again after a 429 or a 5xx (token endpoints are as busy as the rest
    /// of the partner's API): a short, growing pause honouring `Retry-After` up to a cap.
    async fn renew_retrying(&self, refresh: Option<&SecretString>) -> Result<Token, ApiError> {
        let mut pause = Duration::from_millis(200);
        for attempt in 1.. {
            match self.renew(refresh).await {
                Err(e @ (ApiError::RateLimited { .. } | ApiError::Server { .. })) if attempt < RENEW_ATTEMPTS => {
                    let wait = match &e {
                        ApiError::RateLimited { retry_after, .. } | ApiError::Server { retry_after, .. } => {
                            retry_after.unwrap_or(pause)
                        }
                        _ => pause,
                    };
                    crate::telemetry::events::token_retry(&self.api, attempt, &e);
                    self.gate
                        .pause(wait.min(RENEW_MAX_PAUSE).min(self.max_retry_after))
                        .await?;
                    pause = (pause * 2).min(RENEW_MAX_PAUSE);
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }

    async fn renew(&self, refresh: Option<&SecretString>) -> Result<Token, ApiError> {
        let api = self.api;
        let (url, body) = match (&self.exchange, refresh) {
            (Exchange::Password { refresh_url, .. }, Some(r)) => (refresh_url, json!({"refresh": r.expose_secret()})),
            (
                Exchange::Password {
                    token_url,
                    username,
                    password,
                    ..
                },
                None,
            ) => (
                token_url,
                json!({"username": username, "password": password.expose_secret()}),
            ),
            (
                Exchange::ClientCredentials {
                    token_url,
                    client_id,
                    client_secret,
                    lifetime_secs,
                },
                _,
            ) => {
                let mut body = json!({"client_id": client_id, "client_secret": client_secret.expose_secret()});
                if let Some(secs) = lifetime_secs {
                    body["token_expiry_duration"] = json!(secs);
                }
                (token_url, body)
            }
        };
        // Paced like any request; no concurrency slot: the request needing the token holds one.
        self.gate.pace().await?;
        let resp = self.http.post(url).json(&body).send().await.map_err(|e| {
            if e.is_timeout() {
                ApiError::Timeout { api }
            } else {
                ApiError::Connect {
                    api,
                    message: e.to_string(),
                }
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let location = redirect_target(resp.headers());
        let text = read_capped(resp, self.max_response_bytes)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        match status {
            200..=299 => {}
            401 | 403 => return Err(ApiError::Unauthorized { api, status }),
            429 => return Err(ApiError::RateLimited { api, retry_after }),
            500..=599 => {
                return Err(ApiError::Server {
                    api,
                    status,
                    retry_after,
                });
            }
            300..=399 => return Err(ApiError::Redirected { api, status, location }),
            // Any other refusal of the exchange is a refusal of the credentials as configured.
            _ => return Err(ApiError::Unauthorized { api, status }),
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| ApiError::BadBody {
            api,
            status,
            message: format!("token answer: {e}"),
        })?;
        let token = ["access", "api_key", "access_token", "token"]
            .iter()
            .find_map(|k| v[*k].as_str())
            .ok_or_else(|| ApiError::BadBody {
                api,
                status,
                message: "token answer carries no token".into(),
            })?;
        // Crego's documented default is an hour; Credgenics' is 900 s.
        let default = match &self.exchange {
            Exchange::Password { .. } => 3600.0,
            Exchange::ClientCredentials { .. } => 900.0,
        };
        if self.learn_company.load(Ordering::Relaxed) {
            *self.company.lock().unwrap_or_else(|p| p.into_inner()) = Some(only_company(api, &v)?);
        }
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        let ttl = super::lifetime::lifetime_secs(&v, token, now, default);
        // Renew a little before expiry: a fifth of the lifetime, at most a minute.
        let margin = (ttl / 5.0).min(60.0);
        self.issued.fetch_add(1, Ordering::Relaxed);
        Ok(Token {
            value: SecretString::from(token.to_string()),
            refresh: v["refresh"].as_str().map(|r| SecretString::from(r.to_string())),
            renew_at: Instant::now() + Duration::from_secs_f64(ttl - margin),
        })
    }
}

/// The one company of a Credgenics token answer's `company_details[]`: every request must name
/// it, and with several (or none) there is no guessing which the lender meant.
fn only_company(api: Api, answer: &Value) -> Result<String, ApiError> {
    let ids: Vec<&str> = answer["company_details"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["company_id"].as_str()).collect())
        .unwrap_or_default();
    match ids.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(ApiError::Misconfigured {
            api,
            message: "the token answer names no company in company_details[]: set credgenics.company_id".into(),
        }),
        several => Err(ApiError::Misconfigured {
            api,
            message: format!(
                "these client credentials belong to {} companies ({}): set credgenics.company_id to the one to use",
                several.len(),
                several.join(", ")
            ),
        }),
    }
}
