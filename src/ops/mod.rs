//! Operator commands on the state file, safe while the daemon runs: `status` and
//! `dead-letters list | retry | ignore`. They open the file without the daemon's lock; SQLite (WAL)
//! serialises their few writes with the daemon's.

pub mod check_config;
pub mod doctor;
pub mod reconcile;

use std::path::Path;

use serde_json::{Value, json};

use crate::app::report::{AppError, Report};
use crate::store::{LedgerRow, Store};

fn open(path: &Path) -> Result<Store, AppError> {
    Store::open_shared(path).map_err(|e| AppError::Failed(e.to_string()))
}

fn now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

fn when(ts: Option<f64>) -> String {
    match ts {
        Some(t) if t > 0.0 => {
            let age = (now() - t).max(0.0);
            let at = jiff::Timestamp::from_millisecond((t * 1000.0) as i64)
                .map(|x| x.to_string())
                .unwrap_or_default();
            format!("{at} ({} ago)", human_age(age))
        }
        _ => "never".into(),
    }
}

fn human_age(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

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
    Ok(json!({
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

fn payment_line(r: &LedgerRow) -> Value {
    json!({
        "id": format!("payment:{}", r.id),
        "to": r.direction.as_str(),
        "loan_id": r.loan_id,
        "amount": r.amount.to_string(),
        "reference": r.reference,
        "reason": r.dead_reason.as_deref().map(crate::telemetry::mask_digits),
    })
}

pub fn list(path: &Path, as_json: bool) -> Result<Report, AppError> {
    let store = open(path)?;
    let (payments, loans, lines) = match (store.dead_letters(), store.rejected_loans(), store.line_dead_letters()) {
        (Ok(p), Ok(l), Ok(d)) => (p, l, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(AppError::Failed(e.to_string())),
    };
    let mut items: Vec<Value> = loans
        .iter()
        .map(|l| {
            json!({"id": format!("loan:{}", l.loan_id), "to": "credgenics", "loan_id": l.loan_id,
                   "borrower_program_id": l.borrower_program_id,
                   "reason": l.error.as_deref().map(crate::telemetry::mask_digits)})
        })
        .collect();
    items.extend(payments.iter().map(payment_line));
    items.extend(lines.iter().map(|d| {
        json!({"id": format!("line:{}", d.line_id), "to": "credgenics", "lead_id": d.lead_id,
               "borrower_program_id": d.borrower_program_id, "attempts": d.attempts,
               "reason": crate::telemetry::mask_digits(&d.reason)})
    }));
    if as_json {
        println!("{}", Value::Array(items));
        return Ok(Report::Clear);
    }
    if items.is_empty() {
        println!("no dead letters");
    }
    for i in &items {
        println!(
            "{:<16} to {:<10} loan {:<12} {}{}",
            i["id"].as_str().unwrap_or_default(),
            i["to"].as_str().unwrap_or_default(),
            i["loan_id"]
                .as_str()
                .or(i["borrower_program_id"].as_str())
                .unwrap_or_default(),
            i["amount"].as_str().map(|a| format!("₹{a} ")).unwrap_or_default(),
            i["reason"].as_str().unwrap_or_default()
        );
    }
    Ok(Report::Clear)
}

/// `loan:<id>`, `line:<id>` or `payment:<n>` (a bare number is a payment).
enum Target {
    Loan(String),
    Line(String),
    Payment(i64),
}

fn parse_target(id: &str) -> Option<Target> {
    if let Some(l) = id.strip_prefix("loan:") {
        return (!l.is_empty()).then(|| Target::Loan(l.to_string()));
    }
    if let Some(l) = id.strip_prefix("line:") {
        return (!l.is_empty()).then(|| Target::Line(l.to_string()));
    }
    id.strip_prefix("payment:")
        .unwrap_or(id)
        .parse()
        .ok()
        .map(Target::Payment)
}

pub fn retry(path: &Path, id: Option<&str>, all: bool) -> Result<Report, AppError> {
    let store = open(path)?;
    let targets: Vec<Target> = if all {
        let listed = store
            .rejected_loans()
            .and_then(|l| Ok((l, store.dead_letters()?, store.line_dead_letters()?)));
        let (loans, payments, lines) =
            listed.map_err(|e| AppError::Failed(format!("cannot list the dead letters: {e}")))?;
        let mut t: Vec<Target> = loans.into_iter().map(|l| Target::Loan(l.loan_id)).collect();
        t.extend(payments.into_iter().map(|r| Target::Payment(r.id)));
        t.extend(lines.into_iter().map(|d| Target::Line(d.line_id)));
        t
    } else {
        match id.and_then(parse_target) {
            Some(t) => vec![t],
            None => {
                return Err(AppError::Usage(
                    "give a dead letter id (loan:<loan id>, line:<line id> or payment:<n>, as `dead-letters list` shows) or --all"
                        .into(),
                ));
            }
        }
    };
    let mut missing = 0;
    for t in &targets {
        let ok = match t {
            Target::Loan(l) => store.resync_loan(l),
            Target::Line(l) => store.retry_line(l),
            Target::Payment(n) => store.retry_dead(*n, now()),
        };
        match ok {
            Ok(true) => {}
            Ok(false) => {
                missing += 1;
                eprintln!("error: {} is not a dead letter", describe(t));
            }
            Err(e) => return Err(AppError::Failed(e.to_string())),
        }
    }
    println!("{} dead letter(s) queued for the next run", targets.len() - missing);
    Ok(Report::clear_if(missing == 0))
}

pub fn ignore(path: &Path, id: &str, reason: &str) -> Result<Report, AppError> {
    if reason.trim().is_empty() {
        return Err(AppError::Usage(
            "--reason is required: say why this dead letter is set aside".into(),
        ));
    }
    let Some(t) = parse_target(id) else {
        return Err(AppError::Usage(format!(
            "`{id}` is not a dead letter id (loan:<loan id>, line:<line id> or payment:<n>)"
        )));
    };
    let store = open(path)?;
    let ok = match &t {
        Target::Loan(l) => store.ignore_loan(l, reason),
        Target::Line(l) => store.ignore_line(l, reason),
        Target::Payment(n) => store.ignore_dead(*n, reason, now()),
    };
    match ok {
        Ok(true) => {
            println!("{} ignored", describe(&t));
            Ok(Report::Clear)
        }
        Ok(false) => Err(AppError::Failed(format!("{} is not a dead letter", describe(&t)))),
        Err(e) => Err(AppError::Failed(e.to_string())),
    }
}

fn describe(t: &Target) -> String {
    match t {
        Target::Loan(l) => format!("loan:{l}"),
        Target::Line(l) => format!("line:{l}"),
        Target::Payment(n) => format!("payment:{n}"),
    }
}

/// Which payload a `mapping test` fixture is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MappingKind {
    /// Upload Loan (`[mapping.loan]` + `[mapping.default]`).
    Loan,
    /// Update Payment (`[mapping.payment]`).
    Payment,
    /// Crego record (`[mapping.record]`).
    Record,
}

/// Maps `input` (a saved input document) with the configured mapping; compares with `expected`
/// when given (exit 1 on any difference), else prints the payload.
pub fn mapping_test(
    config: Option<&Path>,
    kind: MappingKind,
    input: &Path,
    expected: Option<&Path>,
) -> Result<Report, AppError> {
    let config = crate::config::load_offline(config).map_err(AppError::config)?;
    let read = |p: &Path| -> Result<Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", p.display()))
    };
    let doc = read(input).map_err(AppError::Usage)?;
    let tz_offset_secs = config.sync.timezone.to_offset(jiff::Timestamp::now()).seconds();
    let env = crate::mapping::EvalEnv { tz_offset_secs };
    let mapped = match kind {
        MappingKind::Loan => crate::flows::loans::map_loan_input(&config, env, &doc),
        // The path flow C takes: map, round, preflight.
        MappingKind::Payment => crate::flows::repayments::map_payment_input(
            &config,
            env,
            &doc,
            doc["loan"]["allocation_month"].as_str().unwrap_or_default(),
        ),
        MappingKind::Record => config
            .mapping
            .record
            .eval(&doc, &env)
            .map(Value::Object)
            .map_err(|e| e.to_string()),
    };
    let got = match mapped {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mapping failed: {e}");
            return Ok(Report::Attention);
        }
    };
    let Some(expected) = expected else {
        println!("{}", serde_json::to_string_pretty(&got).unwrap_or_default());
        return Ok(Report::Clear);
    };
    let want = read(expected).map_err(AppError::Usage)?;
    let diffs = diff("", &want, &got);
    if diffs.is_empty() {
        println!("mapping matches {}", expected.display());
        Ok(Report::Clear)
    } else {
        println!("mapping differs from {}:", expected.display());
        for d in diffs {
            println!("  {d}");
        }
        Ok(Report::Attention)
    }
}

/// Field-by-field differences between `want` and `got`, as readable lines.
fn diff(path: &str, want: &Value, got: &Value) -> Vec<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let mut keys: Vec<&String> = w.keys().chain(g.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match (w.get(k), g.get(k)) {
                        (Some(a), Some(b)) => diff(&p, a, b),
                        (Some(a), None) => vec![format!("{p}: expected {a}, missing")],
                        (None, Some(b)) => vec![format!("{p}: not expected, got {b}")],
                        (None, None) => vec![],
                    }
                })
                .collect()
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .flat_map(|(i, (a, b))| diff(&format!("{path}.{i}"), a, b))
            .collect(),
        (a, b) if a == b => vec![],
        (a, b) => vec![format!("{path}: expected {a}, got {b}")],
    }
}

/// `backup FILE`: the state copied with SQLite's online backup (the daemon may be running).
pub fn backup(state: &Path, file: &Path) -> Result<Report, AppError> {
    if !state.exists() {
        return Err(AppError::Failed(format!(
            "no state file at {} (state.path): nothing to back up",
            state.display()
        )));
    }
    let store = Store::open_read_only(state).map_err(|e| AppError::Failed(e.to_string()))?;
    let summary = store
        .backup_to(file)
        .map_err(|e| AppError::Failed(format!("backup not written: {e}")))?;
    println!(
        "backup written: {} ({} loans, {} ledger rows, {} bytes, mode 0600)",
        file.display(),
        summary.loans,
        summary.ledger_rows,
        summary.bytes
    );
    println!(
        "restore: stop the service, copy it to {}, remove any {0}-wal and {0}-shm beside it, start the service",
        state.display()
    );
    Ok(Report::Clear)
}
