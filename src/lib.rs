//! crego-credgenics-sync keeps a lender's Crego LMS and its Credgenics collections account in step.
//!
//! # Layout
//!
//! The folders follow the data, in the order it moves, and no module imports one that imports it
//! back (`tests/layout.rs` checks that, and that no file passes 500 lines):
//!
//! - [`app`]: `args` (clap, raw) → `mode` (one resolved `Mode`, nonsense combinations refused)
//!   → `run` (dispatch); commands end in a `Report` or an `AppError` (`report`), and only
//!   `main.rs` turns those into exit numbers.
//! - [`config`]: `raw` (serde form, defaults; `filters`) → `validate` → `checked` (what everyone
//!   reads); `load` reads the file and the environment.
//! - [`clock`]: "now" (with the `CCSYNC_NOW` override), dates in the configured time zone.
//! - [`partners`]: everything that talks to a partner — `http` (`error`: the one retry
//!   classification; `gate`: rate ceiling, concurrency, the shutdown token; `client`: retries
//!   honouring `Retry-After`; `token`: exchanged tokens, renewed through the same gate, with
//!   `lifetime`; `absent`: which answers mean "not there"; `path`: path segments), `crego`
//!   (its client and `stream`, the keyset reader of its change streams) and `credgenics` (its
//!   client and `rules`, the documented field rules: the preflight).
//! - [`mapping`]: jq field mapping — `jq` (jaq compile/eval), `budget` (a wall-time budget per
//!   expression), `bounded` (expressions that cannot run away, evaluated inline), built-in
//!   defaults, `link` (which fields link a line and a record to their loan), `samples` (what
//!   `check-config` evaluates them on).
//! - [`money`]: exact decimal amounts in and out of JSON.
//! - [`flows`]: the flows, each deciding then applying — `loans` (A: run → pipeline → pure
//!   `decide` → `apply`), `repayments` (C, with `status`: `final_status` at send time),
//!   `recoveries` (B), `reconcile` (both books compared: `read` → pure `compare` → `fix`);
//!   `context` (what a flow is handed), `once` (the `--once` cycle).
//! - [`ledger`]: `deliver`, the payment ledger's effectively-once delivery, generic over an
//!   `Outbound` both payment flows implement; it depends on no flow.
//! - [`store`]: SQLite state, all of the crate's SQL — `db` (the file, lock, migrations),
//!   `cursors`, `loans`, `ledger` (with `intake`: the one insert every new payment goes
//!   through), `dead_letters` (and their audit), `jobs`, `reconcile`, `care` (backup, retention,
//!   the state's Credgenics mode).
//! - [`schedule`]: the jobs and their cron loop; [`runtime`]: each job's heartbeat, for the
//!   systemd watchdog; [`daemon`]: daemon mode — listener, jobs, watchdog, the one shutdown path.
//! - [`server`]: the daemon's HTTP listeners — the webhook's (behind a connection guard) and the
//!   operators' `admin` (health, readiness, metrics).
//! - [`telemetry`]: `logging` (flat JSON, journald priorities), `metric` names and help,
//!   `events` (every log event, with its metric where it has one), `mask` (personal data in logs
//!   and output).
//! - [`ops`]: operator commands (`status`, `dead-letters`, `mapping test`, `check-config`,
//!   `doctor`, `backup`, `reconcile`'s report); `app::summary` the readable cycle summary;
//!   [`preview`]: what the mapping makes of live data, without writing ([`ops::preview_credit_line`] in
//!   credit-line mode).
//! - [`sandbox`]: fake Crego and Credgenics for the demo, tests and benchmarks — `spec`, `state`,
//!   `gate` (the HTTP glue), `fake_crego`, `fake_credgenics` (with `credit_line`: the Credit Line
//!   APIs of a credit-line tenant), `checks` (validation written from the API document alone), `seed`, `realism` + `lagging` (the untidy mode); [`demo`]: the guided
//!   sandbox run; [`bench`]: the lender-scale benchmark.

pub mod app;
#[cfg(feature = "sandbox")]
pub mod bench;
pub mod clock;
pub mod config;
pub mod daemon;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod flows;
pub mod ledger;
pub mod mapping;
pub mod money;
pub mod ops;
pub mod partners;
pub mod preview;
pub mod runtime;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod schedule;
pub mod server;
pub mod store;
pub mod telemetry;
