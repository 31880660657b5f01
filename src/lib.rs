//! crego-credgenics-sync keeps a lender's Crego LMS and its Credgenics collections account in step.
//!
//! # Layout
//!
//! The folders follow the data flow, and no module imports one that imports it back
//! (`tests/layout.rs` checks that, and that no file passes 500 lines):
//!
//! - [`config`]: `raw` (serde form, defaults) → `validate` → `checked` (what everyone reads);
//!   `load` reads the file and the environment.
//! - [`clock`]: "now" (with the `CCSYNC_NOW` override), dates in the configured time zone.
//! - [`http`]: what both partner clients share — `error` (the one retry classification), `gate`
//!   (rate ceiling, concurrency, the shutdown token), `client` (retries honouring `Retry-After`),
//!   `token` (exchanged tokens, renewed through the same gate).
//! - [`crego`]: the Crego client and the keyset reader of its change streams ([`crego::stream`]).
//! - [`credgenics`]: the Credgenics client and its documented field rules (the preflight).
//! - [`mapping`]: jq field mapping — `jq` (jaq compile/eval), `budget` (a wall-time budget per
//!   expression), built-in defaults, `samples` (what `check-config` evaluates them on).
//! - [`money`]: exact decimal amounts in and out of JSON.
//! - [`sync`]: the flows — `place_loans` (A: run → pipeline → pure `decide` → `apply`),
//!   `push_repayments` (C, with `status`: `final_status` at send time), `pull_recoveries` (B) —
//!   and `deliver`, the ledger's effectively-once delivery, generic over an `Outbound` both
//!   payment flows implement; `context` (what a flow is handed), `once` (the `--once` cycle).
//! - [`store`]: SQLite state, all of the crate's SQL — `db` (the file, lock, migrations),
//!   `cursors`, `loans`, `ledger`, `dead_letters`, `jobs`.
//! - [`schedule`]: the jobs and their cron loop; [`runtime`]: each job's heartbeat, for the
//!   systemd watchdog; [`daemon`]: daemon mode — listener, jobs, watchdog, the one shutdown path.
//! - [`server`]: the daemon's HTTP listener (webhook, health, metrics) behind a connection guard.
//! - [`ops`]: operator commands (`status`, `dead-letters`, `mapping test`, `check-config`);
//!   [`preview`]: what the mapping makes of live data, without writing.
//! - [`sandbox`]: fake Crego and Credgenics for the demo, tests and benchmarks — `spec`, `state`,
//!   `gate` (the HTTP glue), `fake_crego`, `fake_credgenics`, `checks` (validation written from the
//!   API document alone), `seed`, `realism` + `lagging` (the untidy mode).
//! - [`exit`]: the exit codes; [`cli`]: the command line and the entry point `run`; [`demo`]:
//!   the guided sandbox run; [`bench`]: the lender-scale benchmark.
//! - [`telemetry`]: log events, metric names and personal-data masking.

pub mod app;
pub mod bench;
pub mod clock;
pub mod config;
pub mod credgenics;
pub mod crego;
pub mod daemon;
pub mod demo;
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
