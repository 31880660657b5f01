//! Log events (and their metrics) of the daemon's life and its state file.

use std::fmt::Display;
use std::time::Duration;

/// The `target` of these lines (`RUST_LOG=ccsync::daemon=debug` selects them).
const TARGET: &str = "ccsync::daemon";

pub fn hangup_ignored() {
    tracing::warn!(
        target: TARGET, event = "hangup_ignored",
        "SIGHUP ignored: logs go to stdout/journald and the config is read at start; restart to reload it"
    );
}

pub fn daemon_started(listen: &dyn std::fmt::Debug, admin: &dyn std::fmt::Debug) {
    tracing::info!(target: TARGET, event = "daemon_started", listen = ?listen, admin = ?admin, "daemon started");
}

pub fn daemon_stopping() {
    tracing::info!(
        target: TARGET, event = "daemon_stopping",
        "shutdown requested: finishing the in-flight batch"
    );
}

pub fn daemon_grace_expired(grace: Duration) {
    tracing::warn!(
        target: TARGET, event = "daemon_grace_expired",
        grace_secs = grace.as_secs(),
        "in-flight batch did not finish in time; unsent work stays in the state"
    );
}

pub fn daemon_stopped() {
    tracing::info!(target: TARGET, event = "daemon_stopped", "daemon stopped");
}

pub fn watchdog_withheld(reason: &dyn Display) {
    tracing::error!(target: TARGET, event = "watchdog_withheld", reason = %reason, "watchdog not fed");
}

pub fn clock_overridden(value: &str) {
    tracing::warn!(
        target: TARGET, event = "clock_override",
        now = value,
        "CCSYNC_NOW is set: the process runs on a shifted clock"
    );
}

pub fn state_lock_recovered() {
    tracing::error!(
        target: TARGET, event = "state_lock_recovered",
        "a task panicked while using the state; carrying on"
    );
}

pub fn state_file_tightened(path: &std::path::Path, was: u32) {
    tracing::warn!(target: TARGET, event = "state_file_tightened", path = %path.display(), was = format!("{was:o}"),
        "the state file was readable by others: now 0600");
}

pub fn state_pruned(days: u32, payloads: u64, webhook_events: u64, runs: u64, credgenics_reads: u64) {
    tracing::info!(
        target: TARGET, event = "state_pruned",
        retain_days = days,
        payloads,
        webhook_events,
        runs,
        credgenics_reads,
        "pruned raw payloads and logs of finished work"
    );
}

pub fn prune_failed(error: &dyn std::fmt::Display) {
    tracing::warn!(target: TARGET, event = "prune_failed", error = %error, "retention pass failed; the next one tries again");
}
