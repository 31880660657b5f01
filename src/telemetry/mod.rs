//! What the daemon tells its operators: the log subscriber ([`logging`]), the Prometheus recorder, metric
//! names ([`metric`]), every log event ([`events`], each with its metric where it has one) and
//! personal-data masking ([`mask`]).
//!
//! Logs never carry a token, a full phone number, PAN, Aadhaar or e-mail: payloads go through
//! [`mask_payload`] before they are printed or logged.

pub mod events;
pub mod logging;
pub mod mask;
pub mod metric;

pub use logging::{LogFormat, init_logging};
pub use mask::{mask_digits, mask_payload, mask_phones, mask_values};

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
            metric::zero_counters();
            metrics::gauge!(metric::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => COMMIT).set(1.0);
            Some(handle)
        })
        .as_ref()
}
