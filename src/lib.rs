//! crego-credgenics-sync keeps a lender's Crego LMS and its Credgenics collections account in step.
//!
//! # Layout
//!
//! The folders follow the data flow:
//!
//! - [`config`]: the TOML + env configuration, validated into its checked form.
//! - [`clock`]: "now" (with the `CCSYNC_NOW` override), dates in the configured time zone.
//! - [`http`]: the HTTP discipline both partner clients share (rate, concurrency, retries).
//! - [`crego`]: the Crego client (line details, leads, programs, records) and the keyset reader
//!   of its change streams ([`crego::stream`]).
//! - [`credgenics`]: the Credgenics client and its documented field rules.
//! - [`mapping`]: jq field mapping (jaq), built-in defaults.
//! - [`money`]: exact decimal amounts in and out of JSON.
//! - [`store`]: SQLite state — cursors, loans, runs — and all of the crate's SQL.
//! - [`sync`]: the flows (A loans out, C repayments out, B recoveries in), the `final_status`
//!   decided at send time ([`sync::status`]), ledger delivery, the `--once` cycle.
//! - [`daemon`]: daemon mode — listener, jobs, watchdog, the one shutdown path.
//! - [`ops`]: operator commands (`status`, `dead-letters`, `mapping test`, `check-config`).
//! - [`preview`]: what the mapping makes of live data, without writing.
//! - [`schedule`]: the jobs and their cron loop (daemon mode).
//! - [`runtime`]: each job's heartbeat, for the systemd watchdog.
//! - [`server`]: the daemon's HTTP listener (Credgenics webhook, health).
//! - [`sandbox`]: fake Crego and Credgenics servers for the demo, tests and benchmarks, with their
//!   own checks written from the API documents and a realistic (untidy) mode.
//! - [`exit`]: the exit codes.
//! - [`cli`]: the command line and the entry point `run`; [`demo`]: the guided sandbox run.
//! - [`bench`]: the lender-scale benchmark against a sandbox in its own process.
//! - [`telemetry`]: log events and personal-data masking.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credgenics;
pub mod crego;
pub mod daemon;
pub mod demo;
pub mod exit;
pub mod http;
pub mod mapping;
pub mod money;
pub mod ops;
pub mod preview;
pub mod runtime;
pub mod sandbox;
pub mod schedule;
pub mod server;
pub mod store;
pub mod sync;
pub mod telemetry;
