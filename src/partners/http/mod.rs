//! The one HTTP discipline both partner clients share: a per-API rate ceiling (governor, burst 1,
//! so no one-second window ever sees more than `requests_per_second` starts), bounded concurrency,
//! explicit timeouts, retries with backon (exponential, jittered, honouring `Retry-After`), and the
//! single place — [`ApiError::retryable`] — that decides what may be retried.
//!
//! Writes that are not idempotent (`Safety::Unsafe`) are only retried when the server provably did
//! not act (429, connection refused). Any other failure of such a write is *in doubt*, and the
//! caller must look on the other side before sending again (design §2.3).

pub mod absent;
pub mod client;
pub mod error;
pub mod gate;
pub mod lifetime;
pub mod path;
pub mod token;

pub use client::{ApiClient, ApiStats, Auth, Response};
pub use error::{Api, ApiError, Safety};
pub use gate::Gate;
