//! What the daemon tells its operators: the log subscriber, the Prometheus recorder, metric
//! names ([`metric`]), every log event ([`events`], each with its metric where it has one) and
//! personal-data masking ([`mask`]).
//!
//! Logs never carry a token, a full phone number, PAN, Aadhaar or e-mail: payloads go through
//! [`mask_payload`] before they are printed or logged.

pub mod events;
pub mod mask;
pub mod metric;

pub use mask::{mask_digits, mask_payload, mask_phones, mask_values};

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: JSON lines when stdout is not a terminal (journald), human
/// text on a terminal. `RUST_LOG` wins over the configured level.
/// How log lines are written (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal (journald), human-readable on one.
    Auto,
    Json,
    Human,
}

pub fn init_logging(level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{level},refinery_core=warn")));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, demo after check) is harmless: keep the first.
    let _ = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.with_target(false).try_init()
    };
}

static PROMETHEUS: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    std::sync::OnceLock::new();

/// The commit this binary was built from (`build.rs`), or `unknown` outside a git checkout.
pub const COMMIT: &str = env!("CREGO_SYNC_BUILD_COMMIT");

/// The process-wide Prometheus recorder, installed on first use: durations as histograms (they
/// aggregate across instances, a summary does not), every family described, `build_info` set.
pub fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PROMETHEUS
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(metric::HTTP_REQUEST_DURATION.into()),
                    metric::REQUEST_BUCKETS,
                )
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(metric::JOB_DURATION.into()), metric::JOB_BUCKETS))
                .ok()?
                .install_recorder()
                .ok()?;
            metric::describe();
            metrics::gauge!(metric::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => COMMIT).set(1.0);
            Some(handle)
        })
        .as_ref()
}
