//! `mapping test`: the configured mapping on saved input documents, offline — mapped, then
//! checked by the preflight (Credgenics' documented rules, or the Crego record's) as a real run
//! would, then compared with an expected payload. One file, or a folder of cases.

use std::path::Path;

use serde_json::Value;

use crate::app::report::{AppError, Report};
use crate::config::Config;
use crate::mapping::EvalEnv;

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

/// Maps one input as the daemon would, then runs the preflight on the result: a payload the
/// partner's documented rules refuse fails here as it would in production.
fn map_checked(config: &Config, env: EvalEnv, kind: MappingKind, doc: &Value) -> Result<Value, String> {
    match kind {
        MappingKind::Loan => {
            let payload = crate::flows::loans::map_loan_input(config, env, doc)?;
            let loan_id = payload["loan_id"].as_str().unwrap_or_default();
            let errors = crate::partners::credgenics::rules::check_upload(loan_id, &payload);
            match crate::partners::credgenics::preflight(errors) {
                None => Ok(payload),
                Some(reason) => Err(format!(
                    "the preflight refuses it (Credgenics' documented rules): {reason}"
                )),
            }
        }
        // The path flow C takes: map, round, preflight.
        MappingKind::Payment => crate::flows::repayments::map_payment_input(
            config,
            env,
            doc,
            doc["loan"]["allocation_month"].as_str().unwrap_or_default(),
        ),
        MappingKind::Record => {
            let record = config.mapping.record.eval(doc, &env).map_err(|e| e.to_string())?;
            match crate::flows::recoveries::check_record(&record) {
                None => Ok(Value::Object(record)),
                Some(reason) => Err(format!("the preflight refuses it (the Crego record's rules): {reason}")),
            }
        }
    }
}

fn read(p: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", p.display()))
}

/// One case: mapped and checked, then compared when an expected payload is given; the lines to
/// print, or why it failed.
fn case(
    config: &Config,
    env: EvalEnv,
    kind: MappingKind,
    input: &Path,
    expected: Option<&Path>,
) -> Result<Value, Vec<String>> {
    let doc = read(input).map_err(|e| vec![e])?;
    let got = map_checked(config, env, kind, &doc).map_err(|e| vec![format!("mapping failed: {e}")])?;
    if let Some(expected) = expected {
        let want = read(expected).map_err(|e| vec![e])?;
        let diffs = diff("", &want, &got);
        if !diffs.is_empty() {
            return Err(diffs);
        }
    }
    Ok(got)
}

/// Maps `input` (a saved input document, or a folder of them) with the configured mapping and
/// the preflight; compares with `expected` when given (exit 1 on any difference or refusal), else
/// prints the payload. In a folder, each `NAME.json` is a case and `NAME.expected.json`, when
/// there, its expected payload.
pub fn mapping_test(
    config: Option<&Path>,
    kind: MappingKind,
    input: &Path,
    expected: Option<&Path>,
) -> Result<Report, AppError> {
    let config = crate::config::load_offline(config).map_err(AppError::config)?;
    let tz_offset_secs = config.sync.timezone.to_offset(jiff::Timestamp::now()).seconds();
    let env = EvalEnv { tz_offset_secs };
    if input.is_dir() {
        if expected.is_some() {
            return Err(AppError::Usage(
                "--expected goes with one input file; in a folder, NAME.expected.json beside NAME.json is the case's expected payload".into(),
            ));
        }
        return folder(&config, env, kind, input);
    }
    if !input.exists() {
        return Err(AppError::Usage(format!(
            "cannot read {}: no such file or folder",
            input.display()
        )));
    }
    match case(&config, env, kind, input, expected) {
        Ok(got) => {
            match expected {
                Some(e) => println!("mapping matches {}", e.display()),
                None => println!("{}", serde_json::to_string_pretty(&got).unwrap_or_default()),
            }
            Ok(Report::Clear)
        }
        Err(lines) => {
            match expected {
                Some(e) if !lines[0].starts_with("mapping failed") => println!("mapping differs from {}:", e.display()),
                _ => {}
            }
            for l in lines {
                if l.starts_with("mapping failed") {
                    eprintln!("{l}");
                } else {
                    println!("  {l}");
                }
            }
            Ok(Report::Attention)
        }
    }
}

/// Every case of a folder, one line each, then the count; exit 1 when any failed.
fn folder(config: &Config, env: EvalEnv, kind: MappingKind, dir: &Path) -> Result<Report, AppError> {
    let mut inputs: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| AppError::Usage(format!("cannot read the folder {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .collect();
    inputs.sort();
    if inputs.is_empty() {
        return Err(AppError::Usage(format!(
            "no cases in {}: a case is NAME.json (the input), with NAME.expected.json beside it when its payload is pinned",
            dir.display()
        )));
    }
    let mut failed = 0;
    for input in &inputs {
        let name = input.file_stem().and_then(|n| n.to_str()).unwrap_or_default();
        let expected = input.with_file_name(format!("{name}.expected.json"));
        let expected = expected.exists().then_some(expected);
        match case(config, env, kind, input, expected.as_deref()) {
            Ok(_) => println!(
                "ok    {name}{}",
                if expected.is_some() {
                    ""
                } else {
                    " (mapped and checked; no expected payload)"
                }
            ),
            Err(lines) => {
                failed += 1;
                println!("FAIL  {name}");
                for l in lines {
                    println!("        {l}");
                }
            }
        }
    }
    println!(
        "{} case(s): {} passed, {failed} failed",
        inputs.len(),
        inputs.len() - failed
    );
    Ok(Report::clear_if(failed == 0))
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
