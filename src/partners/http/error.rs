//! What can go wrong talking to a partner, and the one place — [`ApiError::retryable`] — that
//! decides what may be retried; plus what an answer's headers say about it (`Retry-After`, where
//! a redirect pointed) and reading its body under a size cap.

use std::time::Duration;

/// Which partner an error or a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Api {
    Crego,
    Credgenics,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Crego => "crego",
            Api::Credgenics => "credgenics",
        }
    }

    /// The config key an operator fixes when the credential is refused.
    pub fn credential_key(self) -> &'static str {
        match self {
            Api::Crego => "crego.bearer_token (or crego.username/password)",
            Api::Credgenics => "credgenics.auth_token (or credgenics.client_id/client_secret)",
        }
    }

    pub fn base_url_key(self) -> &'static str {
        match self {
            Api::Crego => "crego.base_url",
            Api::Credgenics => "credgenics.base_url",
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether sending the same request twice is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Reads and PATCHes that set values: retried on any transient failure.
    Idempotent,
    /// Creates (loan upload, payment entry, record): retried only when provably not acted on.
    Unsafe,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{api} refused the credential (HTTP {status}): check {key}", key = api.credential_key())]
    Unauthorized { api: Api, status: u16 },
    #[error("{api} rejected the request (HTTP {status}): {body}")]
    Rejected { api: Api, status: u16, body: String },
    #[error("{api} has no such resource (HTTP 404)")]
    NotFound { api: Api },
    #[error("{api} is rate limiting (HTTP 429)")]
    RateLimited { api: Api, retry_after: Option<Duration> },
    #[error("{api} server error (HTTP {status})")]
    Server {
        api: Api,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{api} did not answer in time")]
    Timeout { api: Api },
    #[error("{api} could not be reached: {message}")]
    Connect { api: Api, message: String },
    #[error("{api} connection failed mid-request: {message}")]
    Transport { api: Api, message: String },
    #[error("{api} answered HTTP {status} with a body that could not be read: {message}")]
    BadBody { api: Api, status: u16, message: String },
    /// A 3xx: redirects are never followed (a custom token header is not stripped on redirect,
    /// and a 301/302 turns a POST into a GET whose 200 would look like success).
    #[error("{api} answered HTTP {status} redirecting to {location}: redirects are not followed; check {key}", key = api.base_url_key())]
    Redirected { api: Api, status: u16, location: String },
    /// Shutting down: the request was not sent (a wait — rate limit, retry pause, `Retry-After`
    /// — was cut short instead).
    #[error("{api} request not sent: shutting down")]
    Cancelled { api: Api },
    /// No token could be had (the token endpoint failed after its own retries): the request was
    /// not sent, so it is neither in doubt nor rejected, and it is not retried here (the token
    /// manager has retried the exchange already).
    #[error("{api} request not sent: no token: {message}")]
    NoToken { api: Api, message: String },
    /// The partner's answer shows the config cannot work as it is (a company to choose): no
    /// request can succeed until an operator changes it.
    #[error("{api}: {message}")]
    Misconfigured { api: Api, message: String },
}

impl ApiError {
    /// The one classification: may this failure be retried for a request of this safety?
    pub fn retryable(&self, safety: Safety) -> bool {
        match self {
            ApiError::RateLimited { .. } | ApiError::Connect { .. } => true,
            ApiError::Server { .. }
            | ApiError::Timeout { .. }
            | ApiError::Transport { .. }
            | ApiError::BadBody { .. } => safety == Safety::Idempotent,
            ApiError::Unauthorized { .. }
            | ApiError::Rejected { .. }
            | ApiError::NotFound { .. }
            | ApiError::Redirected { .. }
            | ApiError::Cancelled { .. }
            | ApiError::NoToken { .. }
            | ApiError::Misconfigured { .. } => false,
        }
    }

    /// For a write: the outcome is unknown, so the other side must be looked at before resending.
    pub fn in_doubt(&self) -> bool {
        matches!(
            self,
            ApiError::Server { .. } | ApiError::Timeout { .. } | ApiError::Transport { .. } | ApiError::BadBody { .. }
        )
    }

    /// A refused credential stops the run: nothing else will succeed.
    pub fn is_auth(&self) -> bool {
        matches!(self, ApiError::Unauthorized { .. })
    }

    /// Nothing else will succeed this run: a refused credential, a redirect (the base URL
    /// points somewhere else), or a shutdown. The request was not acted on.
    pub fn stops_run(&self) -> bool {
        matches!(
            self,
            ApiError::Unauthorized { .. }
                | ApiError::Redirected { .. }
                | ApiError::Cancelled { .. }
                | ApiError::Misconfigured { .. }
        )
    }

    /// Which partner it concerns.
    pub fn api(&self) -> Api {
        match self {
            ApiError::Unauthorized { api, .. }
            | ApiError::Rejected { api, .. }
            | ApiError::NotFound { api }
            | ApiError::RateLimited { api, .. }
            | ApiError::Server { api, .. }
            | ApiError::Timeout { api }
            | ApiError::Connect { api, .. }
            | ApiError::Transport { api, .. }
            | ApiError::BadBody { api, .. }
            | ApiError::Redirected { api, .. }
            | ApiError::Cancelled { api }
            | ApiError::NoToken { api, .. }
            | ApiError::Misconfigured { api, .. } => *api,
        }
    }

    /// The run stopped because the process is shutting down, not because anything failed.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ApiError::Cancelled { .. })
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } | ApiError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Where a 3xx pointed, without credentials or query (it goes into logs): `scheme://host/path`.
pub(crate) fn redirect_target(headers: &reqwest::header::HeaderMap) -> String {
    let Some(text) = headers.get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return "(no Location)".into();
    };
    match url::Url::parse(text) {
        Ok(u) => format!("{}://{}{}", u.scheme(), u.host_str().unwrap_or(""), u.path()),
        Err(_) => text
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
    }
}

/// The answer's body, read chunk by chunk and refused past `cap` bytes: a partner's oversized
/// page is an error, not a process grown to gigabytes.
pub(crate) async fn read_capped(mut resp: reqwest::Response, cap: u64) -> Result<bytes::Bytes, String> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(format!(
            "the answer is larger than the {cap}-byte limit (max_response_bytes)"
        ));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(format!(
                "the answer is larger than the {cap}-byte limit (max_response_bytes)"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `Retry-After` in seconds, as both partners send it.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_not_blindly_retried() {
        let api = Api::Credgenics;
        let server = ApiError::Server {
            api,
            status: 502,
            retry_after: None,
        };
        assert!(server.retryable(Safety::Idempotent));
        assert!(!server.retryable(Safety::Unsafe));
        assert!(server.in_doubt());
        let limited = ApiError::RateLimited { api, retry_after: None };
        assert!(limited.retryable(Safety::Unsafe));
        assert!(!limited.in_doubt());
        let rejected = ApiError::Rejected {
            api,
            status: 400,
            body: String::new(),
        };
        assert!(!rejected.retryable(Safety::Idempotent));
        assert!(!ApiError::Unauthorized { api, status: 401 }.retryable(Safety::Idempotent));
    }
}
