//! Operator commands on the state file, safe while the daemon runs: `status` and
//! `dead-letters list | retry | ignore`. They open the file without the daemon's lock; SQLite (WAL)
//! serialises their few writes with the daemon's. [`preview_credit_line`]: `preview` in
//! credit-line mode (it moves toward `ops/preview.rs`, where layout.md puts preview).

mod backup;
pub mod check_config;
mod dead_letters;
pub mod doctor;
mod mapping_test;
pub mod preview_credit_line;
pub mod reconcile;
mod shared;

pub use backup::backup;
pub use dead_letters::{ignore, list, retry};
pub use mapping_test::{MappingKind, mapping_test};
use shared::{open, when};

use std::path::Path;

use serde_json::{Value, json};

use crate::app::report::{AppError, Report};
use crate::store::Store;

/// Everything `status` shows, as JSON.
pub fn status_json(store: &Store) -> Result<Value, crate::store::StoreError> {
    let streams: Vec<Value> = store
        .streams()?
        .into_iter()
        .map(|s| {
            json!({"stream": s.stream, "cursor": s.cursor, "cursor_moved_at": s.advanced_at,
                   "read_to_end_at": s.checked_at})
        })
        .collect();
    let ledger: Vec<Value> = store
        .ledger_counts()?
        .into_iter()
        .map(|((direction, state), n)| json!({"direction": direction, "state": state, "count": n}))
        .collect();
    let jobs: Vec<Value> = store
        .jobs()?
        .into_iter()
        .map(
            |j| json!({"job": j.job, "last_slot": j.last_slot, "last_ok_at": j.last_ok_at, "last_error": j.last_error}),
        )
        .collect();
    let runs: Vec<Value> = store
        .last_runs(5)?
        .into_iter()
        .map(|r| {
            json!({"id": r.id, "job": r.job, "started_at": r.started_at, "finished_at": r.finished_at,
                   "outcome": r.outcome})
        })
        .collect();
    let dead = store.dead_letters()?.len() + store.rejected_loans()?.len() + store.line_dead_letters()?.len();
    let reconcile = store.reconcile_last()?.map(|r| {
        json!({"run": r.id, "finished_at": r.finished_at, "loans_checked": r.loans_checked,
               "agreeing": r.agreeing, "unreadable": r.unreadable, "findings": r.counts,
               "lms_total": r.lms_total.to_string(), "credgenics_total": r.credgenics_total.to_string()})
    });
    let history: Vec<Value> = store
        .reconcile_history(7)?
        .into_iter()
        .map(|r| {
            json!({"run": r.id, "scope": r.scope, "started_at": r.started_at, "finished_at": r.finished_at,
                        "loans_checked": r.loans_checked, "findings": r.counts})
        })
        .collect();
    let credit_line = store.cl_status()?.filter(|c| c.customers > 0).map(|c| {
        let by_state: serde_json::Map<String, Value> = c
            .by_state
            .iter()
            .map(|(s, n)| (s.as_str().to_string(), json!(n)))
            .collect();
        let refused: Vec<Value> = c
            .refused
            .iter()
            .map(|(t, why)| json!({"transaction_id": t, "reason": why}))
            .collect();
        json!({"customers": c.customers, "transactions": by_state, "refused": refused})
    });
    Ok(json!({
        "mode": store.mode()?,
        "credit_line": credit_line,
        "reconcile": reconcile,
        "reconcile_history": history,
        "state": store.path().display().to_string(),
        "cursors": streams,
        "loans": store.loan_counts()?,
        "cured_still_open_at_credgenics": store.cured_loans()?,
        "ledger": ledger,
        "jobs": jobs,
        "last_runs": runs,
        "dead_letters": dead,
        "unresolved": crate::flows::unresolved(store)?,
    }))
}

pub fn status(path: &Path, as_json: bool) -> Result<Report, AppError> {
    let store = open(path)?;
    let v = status_json(&store).map_err(|e| AppError::Failed(e.to_string()))?;
    if as_json {
        println!("{v}");
        return Ok(Report::Clear);
    }
    println!("state  {}", v["state"].as_str().unwrap_or_default());
    println!("\ncursors");
    for c in v["cursors"].as_array().into_iter().flatten() {
        println!(
            "  {:<14} at {}; moved {}; read to its end {}",
            c["stream"].as_str().unwrap_or_default(),
            when(c["cursor"].as_f64()),
            when(c["cursor_moved_at"].as_f64()),
            when(c["read_to_end_at"].as_f64())
        );
    }
    println!("\nloans by state");
    for (state, n) in v["loans"].as_object().into_iter().flatten() {
        println!("  {state:<10} {n}");
    }
    let cured = v["cured_still_open_at_credgenics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !cured.is_empty() {
        let ids: Vec<&str> = cured.iter().filter_map(Value::as_str).collect();
        println!(
            "  cured in the LMS but still open at Credgenics (close them there): {}",
            ids.join(", ")
        );
    }
    if let Some(cl) = v["credit_line"].as_object() {
        println!("\ncredit lines: {} customer(s); transactions by state", cl["customers"]);
        for (state, n) in cl["transactions"].as_object().into_iter().flatten() {
            println!("  {state:<10} {n}");
        }
        for r in cl["refused"].as_array().into_iter().flatten() {
            println!(
                "  refused {}: {}",
                r["transaction_id"].as_str().unwrap_or_default(),
                crate::telemetry::mask::mask_digits(r["reason"].as_str().unwrap_or_default())
            );
        }
    }
    println!("\npayments (ledger) by direction and state");
    for l in v["ledger"].as_array().into_iter().flatten() {
        println!(
            "  to {:<11} {:<10} {}",
            l["direction"].as_str().unwrap_or_default(),
            l["state"].as_str().unwrap_or_default(),
            l["count"]
        );
    }
    println!("\njobs");
    for j in v["jobs"].as_array().into_iter().flatten() {
        println!(
            "  {:<16} last slot {}; last success {}{}",
            j["job"].as_str().unwrap_or_default(),
            when(j["last_slot"].as_f64()),
            when(j["last_ok_at"].as_f64()),
            j["last_error"]
                .as_str()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        );
    }
    println!("\nlast runs (--once)");
    for r in v["last_runs"].as_array().into_iter().flatten() {
        println!(
            "  #{:<5} {} {}",
            r["id"],
            when(r["started_at"].as_f64()),
            r["outcome"].as_str().unwrap_or("running or stopped")
        );
    }
    match v["reconcile"].as_object() {
        None => println!("\nreconcile: never run to its end (crego-credgenics-sync reconcile)"),
        Some(r) => {
            let findings: Vec<String> = r["findings"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            println!(
                "\nreconcile (run #{}, {}): {} loans checked, {} agree; findings: {}; LMS {} vs Credgenics {}",
                r["run"],
                when(r["finished_at"].as_f64()),
                r["loans_checked"],
                r["agreeing"],
                if findings.is_empty() {
                    "none".to_string()
                } else {
                    findings.join(", ")
                },
                r["lms_total"].as_str().unwrap_or_default(),
                r["credgenics_total"].as_str().unwrap_or_default()
            );
        }
    }
    println!(
        "\ndead letters: {} (crego-credgenics-sync dead-letters list)",
        v["dead_letters"]
    );
    Ok(Report::Clear)
}
