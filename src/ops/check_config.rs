//! `check-config`: the config's own checks, then every mapping expression once on the built-in
//! samples under the daemon's budget — in a child process of this binary, so an expression that
//! crashes the evaluator (a recursion without end outside tail position overflows the stack, which
//! no Rust code can catch) is reported naming its key instead of killing the check.
//!
//! The child (`check-config --samples-only`) prints one line per step on stdout: `eval\t<key>`
//! before each expression, `fail\t<key>\t<0|1 overran>\t<message>` for each failure, `done` at
//! the end. A child that ends without `done` crashed on the last key it named.

use std::io::Write;
use std::path::Path;

use crate::app::report::{AppError, Report};
use crate::config::{self, Config};
use crate::mapping::samples;

fn env_of(config: &Config) -> crate::mapping::EvalEnv {
    crate::mapping::EvalEnv {
        tz_offset_secs: config.sync.timezone.to_offset(jiff::Timestamp::now()).seconds(),
    }
}

/// Every configured field set with the sample it is checked on.
fn sample_sets(m: &config::Mapping) -> [(&'static str, &crate::mapping::FieldSet, samples::Sample); 6] {
    use samples::Sample;
    [
        ("loan", &m.loan, Sample::Loan),
        ("default", &m.default, Sample::Loan),
        ("payment", &m.payment, Sample::Payment),
        ("record", &m.record, Sample::Record),
        ("link", &m.link.line, Sample::LineItem),
        ("link", &m.link.record, Sample::LmsRecord),
    ]
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

/// The child's side: evaluate and report in the line protocol.
pub fn samples_only(path: &Path) -> Result<Report, AppError> {
    let config = config::load(Some(path)).map_err(AppError::config)?;
    let m = &config.mapping;
    let mut out = std::io::stdout().lock();
    let found = samples::check(&sample_sets(m), &env_of(&config), |key| {
        // Flushed before evaluating: the last line out names the culprit of a crash.
        let _ = writeln!(out, "eval\t{key}");
        let _ = out.flush();
    });
    for f in found {
        let _ = writeln!(
            out,
            "fail\t{}\t{}\t{}",
            f.key,
            u8::from(f.overran),
            one_line(&f.error.message)
        );
    }
    let _ = writeln!(out, "done");
    let _ = out.flush();
    // Runaway evaluations, if any, end with the process.
    Ok(Report::Clear)
}

/// One expression's verdict on its sample.
struct Verdict {
    key: String,
    overran: bool,
    message: String,
}

/// The child ended without finishing: the key it was evaluating (if any) and how it ended.
struct Crash {
    key: Option<String>,
    how: String,
}

/// Runs the child and reads its lines.
fn in_child(path: &Path) -> std::io::Result<Result<Vec<Verdict>, Crash>> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(path)
        .args(["check-config", "--samples-only"])
        .stdin(std::process::Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut last = None;
    let mut found = Vec::new();
    let mut done = false;
    for line in text.lines() {
        let parts: Vec<&str> = line.splitn(4, '\t').collect();
        match parts.as_slice() {
            ["eval", key] => last = Some(key.to_string()),
            ["fail", key, overran, message] => found.push(Verdict {
                key: key.to_string(),
                overran: *overran == "1",
                message: message.to_string(),
            }),
            ["done"] => done = true,
            _ => {}
        }
    }
    if done && out.status.success() {
        return Ok(Ok(found));
    }
    let how = match std::os::unix::process::ExitStatusExt::signal(&out.status) {
        Some(6) => "aborted (a stack overflow: a recursion without end outside tail position?)".to_string(),
        Some(sig) => format!("killed by signal {sig}"),
        None => format!("exited {}", out.status.code().unwrap_or(-1)),
    };
    Ok(Err(Crash { key: last, how }))
}

fn expr_of<'a>(config: &'a Config, key: &str) -> &'a str {
    let m = &config.mapping;
    let (section, field) = key
        .strip_prefix("mapping.")
        .and_then(|k| k.split_once('.'))
        .unwrap_or_default();
    sample_sets(m)
        .into_iter()
        .filter(|(s, _, _)| *s == section)
        .find_map(|(_, set, _)| set.exprs().find(|(k, _)| *k == field).map(|(_, e)| e))
        .unwrap_or("")
}

/// What daemon mode needs beyond a valid config: the webhook token (unless `once`) and a state
/// folder it can write.
fn daemon_needs(raw: &config::RawConfig, once: bool) -> Vec<config::Problem> {
    let mut found = Vec::new();
    if !once && raw.webhook.token.is_none() && raw.webhook.token_file.is_none() {
        found.push(config::Problem {
            key: "webhook.token".into(),
            message: format!(
                "not set, and daemon mode refuses to start without it: set webhook.token_file in the file \
                 or the environment variable {} (`check-config --once` checks a config for --once runs only)",
                config::origin::env_name("webhook.token")
            ),
        });
    }
    let state = Path::new(&raw.state.path);
    let folder = state
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !folder.exists() {
        // Before the first start under systemd: StateDirectory= creates it then.
        eprintln!(
            "warning: state.path: the folder {} does not exist yet; the unit's StateDirectory= creates it at \
             the first start (otherwise create it, writable by the service's user)",
            folder.display()
        );
    } else if let Err(e) = crate::ops::doctor::state_writable(state) {
        found.push(config::Problem {
            key: "state.path".into(),
            message: format!("{e}: {}", crate::ops::doctor::STATE_FIX),
        });
    }
    found
}

/// `check-config`: exit 0 with `config OK`, or 2 naming every problem.
pub fn run(path: &Path, once: bool) -> Result<Report, AppError> {
    let raw = config::load_raw(Some(path)).map_err(AppError::config)?;
    let mut needs = daemon_needs(&raw, once);
    let config = match raw.validate() {
        Ok(c) if needs.is_empty() => c,
        Ok(_) => {
            return Err(AppError::config(config::origin::annotate(
                Some(path),
                config::ConfigError(needs),
            )));
        }
        Err(mut e) => {
            e.0.append(&mut needs);
            return Err(AppError::config(config::origin::annotate(Some(path), e)));
        }
    };
    let verdicts = match in_child(path) {
        Ok(Ok(v)) => v,
        Ok(Err(Crash { key, how })) => {
            match key {
                Some(key) => eprintln!(
                    "{key}: expression `{}` crashed the evaluator on the built-in sample input: {how}",
                    expr_of(&config, &key)
                ),
                None => eprintln!("error: the mapping check could not run: {how}"),
            }
            eprintln!("config refused: a mapping expression crashed the evaluator");
            return Err(AppError::Usage(String::new()));
        }
        // No child (no /proc, a sandboxed exec): check in this process, without the crash guard.
        Err(_) => {
            let m = &config.mapping;
            samples::check(&sample_sets(m), &env_of(&config), |_| {})
                .into_iter()
                .map(|f| Verdict {
                    key: f.key,
                    overran: f.overran,
                    message: f.error.message,
                })
                .collect()
        }
    };
    let refused = verdicts.iter().filter(|v| v.overran).count();
    for v in &verdicts {
        let expr = expr_of(&config, &v.key);
        if v.overran {
            eprintln!(
                "{}: expression `{expr}` {} on the built-in sample input",
                v.key, v.message
            );
        } else {
            eprintln!(
                "warning: {}: expression `{expr}` fails on the built-in sample input: {} (real data may differ; \
                 try `mapping test` with one of yours)",
                v.key, v.message
            );
        }
    }
    if refused > 0 {
        eprintln!("config refused: {refused} mapping expression(s) never finished");
        return Err(AppError::Usage(String::new()));
    }
    if matches!(config.credgenics.credential, config::Credential::Exchange { .. })
        && config.credgenics.company_id.is_none()
    {
        eprintln!(
            "warning: credgenics.company_id is not set: with client credentials it is taken from the token \
             answer when that names exactly one company, and the run stops if it names several; set it to be \
             sure (`doctor` shows the one it would take)"
        );
    }
    let scope = if once { "--once runs" } else { "daemon mode" };
    println!("config OK: {} ({scope})", path.display());
    Ok(Report::Clear)
}
