//! The binary as an operator runs it: check-config, `--once` exit codes, `--dry-run`, the
//! example config.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Harness, binary, overdue_loan_ids, writes};
use serde_json::{Value, json};

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(binary());
    cmd.args(args).env_remove("CCSYNC_NOW").env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

async fn run_async(args: Vec<String>, envs: Vec<(String, String)>) -> Output {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(&args).env_remove("CCSYNC_NOW").env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().await.expect("binary runs")
}

/// The environment a daemon's check passes in: both partner tokens, the webhook's, and a state
/// folder that can be written.
fn daemon_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("CCSYNC_CREGO__BEARER_TOKEN", "t1".into()),
        ("CCSYNC_CREDGENICS__AUTH_TOKEN", "t2".into()),
        ("CCSYNC_WEBHOOK__TOKEN", "t3".into()),
        ("CCSYNC_STATE__PATH", dir.join("state.db").display().to_string()),
    ]
}

fn envs<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn check_config(dir: &Path, toml: &str) -> (i32, String) {
    let path = dir.join("c.toml");
    std::fs::write(&path, toml).unwrap();
    let out = run(
        &["--config", path.to_str().unwrap(), "check-config"],
        &envs(&daemon_env(dir)),
    );
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str =
    "[crego]\nbase_url = \"https://crego.example\"\n[credgenics]\nbase_url = \"https://cg.example/recovery\"\n";

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(check_config(dir.path(), GOOD).0, 0);

    let (code, err) = check_config(dir.path(), &GOOD.replace("https://crego.example", "crego.example"));
    assert_eq!(code, 2);
    assert!(err.contains("crego.base_url"), "{err}");

    let (code, err) = check_config(dir.path(), &format!("{GOOD}page_sise = 5\n"));
    assert_eq!(code, 2);
    assert!(
        err.contains("credgenics.page_sise") && err.contains("unknown field"),
        "{err}"
    );

    let (code, err) = check_config(dir.path(), &format!("{GOOD}[sync]\ntimezone = \"Asia/Kolkatta\"\n"));
    assert_eq!(code, 2);
    assert!(err.contains("sync.timezone") && err.contains("Asia/Kolkatta"), "{err}");

    let (code, err) = check_config(
        dir.path(),
        &format!("{GOOD}[mapping.loan]\napplicant_name = \".lead.name | ascii_upcase(\"\n"),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("mapping.loan.applicant_name") && err.contains("does not compile"),
        "{err}"
    );

    let (code, err) = check_config(
        dir.path(),
        &format!("{GOOD}[mapping.default]\nlate_fee = \"no_such_fn\"\n"),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("mapping.default.late_fee") && err.contains("undefined filter `no_such_fn`"),
        "{err}"
    );

    let (code, err) = check_config(
        dir.path(),
        &format!("{GOOD}[sync.schedules]\nreconcile = \"0 0 2 * *\"\n"),
    );
    assert_eq!(code, 2, "five-field cron lacks seconds");
    assert!(err.contains("sync.schedules.reconcile"), "{err}");
}

/// Issue 15: `check-config` said `config OK` for configs the daemon then refused. It now checks
/// what daemon mode needs and names where each bad value came from.
#[test]
fn check_config_checks_what_the_daemon_needs_and_names_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, GOOD).unwrap();
    let check = |extra: &[(&'static str, String)], remove: &[&str], once: bool| {
        let mut list: Vec<_> = daemon_env(dir.path())
            .into_iter()
            .filter(|(k, _)| !remove.contains(k))
            .collect();
        list.extend(extra.iter().cloned());
        let mut args = vec!["--config", path.to_str().unwrap(), "check-config"];
        if once {
            args.push("--once");
        }
        let out = run(&args, &envs(&list));
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // No webhook token: refused for the daemon, naming the key and the variable; fine for --once.
    let (code, err) = check(&[], &["CCSYNC_WEBHOOK__TOKEN"], false);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("webhook.token") && err.contains("CCSYNC_WEBHOOK__TOKEN"),
        "{err}"
    );
    assert_eq!(check(&[], &["CCSYNC_WEBHOOK__TOKEN"], true).0, 0);

    // A state folder that cannot be written (a file stands where the folder should be).
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "").unwrap();
    let bad_state = blocker.join("state.db").display().to_string();
    let (code, err) = check(
        &[("CCSYNC_STATE__PATH", bad_state.clone())],
        &["CCSYNC_STATE__PATH"],
        true,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("state.path") && err.contains("not-a-folder"), "{err}");
    assert!(err.contains("set by environment variable CCSYNC_STATE__PATH"), "{err}");

    // A bad value from the environment names the variable, not only the key.
    let (code, err) = check(&[("CCSYNC_SYNC__MIN_DPD", "soon".into())], &[], false);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sync.min_dpd") && err.contains("CCSYNC_SYNC__MIN_DPD"),
        "{err}"
    );
    let (code, err) = check(&[("CCSYNC_CREGO__BASE_URL", "crego.example".into())], &[], false);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("crego.base_url") && err.contains("CCSYNC_CREGO__BASE_URL"),
        "{err}"
    );

    // From the file: the line is named.
    std::fs::write(&path, GOOD.replace("https://crego.example", "crego.example")).unwrap();
    let (code, err) = check(&[], &[], false);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{} line 2", path.display())), "{err}");
}

#[test]
fn check_config_reports_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = check_config(
        dir.path(),
        "[crego]\nbase_url = \"nope\"\n[credgenics]\nbase_url = \"\"\n[sync]\ntimezone = \"X/Y\"\nmin_dpd = 0\n",
    );
    assert_eq!(code, 2);
    for key in ["crego.base_url", "credgenics.base_url", "sync.timezone", "sync.min_dpd"] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
}

#[test]
fn secrets_come_from_files_and_env_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "secret-from-file\n").unwrap();
    let path = dir.path().join("c.toml");
    // GOOD ends inside [credgenics]
    std::fs::write(&path, format!("{GOOD}auth_token_file = \"{}\"\n", token.display())).unwrap();
    let state = dir.path().join("state.db").display().to_string();
    let out = run(
        &["--config", path.to_str().unwrap(), "check-config", "--once"],
        &[("CCSYNC_CREGO__BEARER_TOKEN", "t1"), ("CCSYNC_STATE__PATH", &state)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(
        &["--config", path.to_str().unwrap(), "check-config", "--once"],
        &[
            ("CCSYNC_CREGO__BEARER_TOKEN", "t1"),
            ("CCSYNC_STATE__PATH", &state),
            ("CCSYNC_CREDGENICS__AUTH_TOKEN_FILE", "/nonexistent/token"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("credgenics.auth_token_file"));
}

#[test]
fn the_example_config_passes_with_the_two_tokens_from_env() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.example");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["--config", example, "check-config"], &envs(&daemon_env(dir.path())));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["--config", example, "check-config"], &[]);
    assert_eq!(out.status.code(), Some(2), "tokens are required");
}

#[test]
fn the_example_config_lists_every_default_expression() {
    use crego_credgenics_sync::mapping::link::{DEFAULT_LINE_LINK, DEFAULT_RECORD_LINK};
    use crego_credgenics_sync::mapping::{
        DEFAULT_DEFAULT, DEFAULT_LOAN, DEFAULT_PAYMENT, DEFAULT_RECORD, DEFAULT_TRANSACTION,
    };
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml.example")).unwrap();
    for (section, defaults) in [
        ("loan", DEFAULT_LOAN),
        ("default", DEFAULT_DEFAULT),
        ("payment", DEFAULT_PAYMENT),
        ("record", DEFAULT_RECORD),
        ("link", DEFAULT_LINE_LINK),
        ("link", DEFAULT_RECORD_LINK),
        ("transaction", DEFAULT_TRANSACTION),
    ] {
        let start = text
            .find(&format!("[mapping.{section}]"))
            .unwrap_or_else(|| panic!("no [mapping.{section}]"));
        let body = &text[start..];
        for (k, v) in defaults {
            assert!(
                body.contains(&format!("# {k} = '{v}'")),
                "[mapping.{section}] {k} missing or stale"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exits_0_then_a_second_once_writes_nothing() {
    let h = Harness::new(20, 40).await;
    let cfg = h.write_config();
    let args = vec!["--config".to_string(), cfg.display().to_string(), "--once".to_string()];
    let out = run_async(args.clone(), vec![]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("one JSON summary line");
    assert_eq!(
        summary["place_loans"]["placed"].as_u64().unwrap() as usize,
        overdue_loan_ids(&h.sb).len()
    );

    let before = h.sb.requests().len();
    let out = run_async(args, vec![]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(writes(&h.requests_since(before)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exits_1_when_a_loan_is_rejected_and_2_on_a_config_error() {
    let h = Harness::new(20, 40).await;
    {
        let mut s = h.sb.state();
        let lead = s.overdue_programs(1)[0]["lead_id"].as_str().unwrap().to_string();
        s.leads.get_mut(&lead).unwrap()["mobile"] = json!("12345");
    }
    let cfg = h.write_config();
    let out = run_async(
        vec!["--config".into(), cfg.display().to_string(), "--once".into()],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));

    let out = run_async(
        vec!["--config".into(), cfg.display().to_string(), "--once".into()],
        vec![("CCSYNC_SYNC__TIMEZONE".into(), "Nowhere/Land".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out = run_async(
        vec![
            "--config".into(),
            cfg.display().to_string(),
            "--once".into(),
            "--since".into(),
            "last tuesday".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_masked_payloads_and_writes_nothing() {
    let h = Harness::new(20, 40).await;
    let cfg = h.write_config();
    let out = run_async(
        vec!["--config".into(), cfg.display().to_string(), "--dry-run".into()],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), overdue_loan_ids(&h.sb).len());
    for l in &lines {
        assert_eq!(l["method"], "POST");
        let phone = l["payload"]["applicant_contact_number"].as_str().unwrap();
        assert!(phone.starts_with("******") && phone.len() == 10, "{phone}");
        assert_eq!(l["payload"]["applicant_email"], "****");
    }
    assert!(writes(&h.sb.requests()).is_empty());
    assert!(!h.state.exists(), "a dry run creates no state file");

    let out = run_async(
        vec![
            "--config".into(),
            cfg.display().to_string(),
            "--dry-run".into(),
            "--reveal".into(),
        ],
        vec![],
    )
    .await;
    let first: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert!(
        !first["payload"]["applicant_contact_number"]
            .as_str()
            .unwrap()
            .contains('*')
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_state_refuses_to_start() {
    let h = Harness::new(5, 0).await;
    let _held = crego_credgenics_sync::store::Store::open(&h.state).unwrap();
    let cfg = h.write_config();
    let out = run_async(
        vec!["--config".into(), cfg.display().to_string(), "--once".into()],
        vec![],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "design §3: a locked state file means the run could not complete"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another crego-credgenics-sync process"));
}

#[test]
fn demo_runs_on_a_fresh_machine() {
    let out = run(&["demo"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo OK"));
    assert!(stdout.contains("rejected 0"));
    assert!(
        stdout.contains("(nothing changed): 2 request(s)") && stdout.contains(", 0 write(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("both sides agree: Credgenics holds 4 payment(s)"),
        "{stdout}"
    );
}

/// The benchmark keeps working at a small size: the sandbox in its own process, every cycle
/// clean, and a quiet book read with one list request per stream and no write (the incremental
/// target of BENCHMARKS.md, checked here on every CI run rather than only when someone benches).
#[test]
fn bench_runs_small_and_a_quiet_cycle_costs_one_list_request_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("bench.json");
    let out = run(
        &[
            "bench",
            "--leads",
            "300",
            "--overlap-secs",
            "1",
            // Enough work for several seconds at the rate, so a daemon above it would meet 429s.
            "--rate",
            "20",
            "--rate-leads",
            "100",
            "--dir",
            dir.path().to_str().unwrap(),
            "--json",
            report.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let phases = r["phases"].as_array().unwrap();
    let (name, first) = (&phases[0][0], &phases[0][1]);
    assert_eq!(name, "first sync");
    assert!(first["loans_placed"].as_u64().unwrap() > 50, "{first}");
    assert_eq!(
        first["credgenics"]["writes"], first["loans_placed"],
        "one upload per loan placed"
    );
    let phase = |name: &str| {
        &phases
            .iter()
            .find(|p| p[0] == name)
            .unwrap_or_else(|| panic!("no phase {name}: {phases:?}"))[1]
    };
    let steady = phase("no-change, steady");
    assert_eq!(steady["crego"]["requests"], 2, "{steady}");
    assert_eq!(steady["credgenics"]["requests"], 0, "{steady}");
    assert_eq!(steady["crego"]["writes"], 0);
    // Reconcile: every placed loan checked, the books equal; the nightly run, right after the
    // poll, reads nothing at Credgenics and nothing is written anywhere.
    let operator = phase("reconcile (operator run: both sides read)");
    let nightly = phase("reconcile (nightly: shares the poll's reads)");
    for run in [operator, nightly] {
        assert_eq!(run["loans_placed"], first["loans_placed"], "{run}");
        assert_eq!(run["outcome"], "clear", "{run}");
        assert_eq!(run["crego"]["writes"], 0);
        assert_eq!(run["credgenics"]["writes"], 0);
    }
    assert_eq!(operator["credgenics"]["requests"], first["loans_placed"]);
    assert_eq!(nightly["credgenics"]["requests"], 0, "{nightly}");
    let rss = r["peak_rss_mib"].as_f64().unwrap();
    assert!(rss > 1.0 && rss < 64.0, "peak RSS {rss} MiB");
    assert!(
        r["rate_placement"]["crego"]["requests"].as_u64().unwrap() > 40,
        "{}",
        r["rate_placement"]
    );
    for leg in ["rate_placement", "rate_poll"] {
        assert_eq!(r[leg]["crego"]["rate_limited"], 0, "{leg}: {}", r[leg]);
        assert_eq!(r[leg]["credgenics"]["rate_limited"], 0, "{leg}: {}", r[leg]);
    }
}

/// Runs the binary on a pseudo-terminal (util-linux `script`), as an operator at a shell does;
/// what the terminal showed, without carriage returns. `None` where `script` is missing.
fn on_a_terminal(args: &[&str]) -> Option<(i32, String)> {
    let quoted: Vec<String> = std::iter::once(binary())
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let out = std::process::Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .env_remove("CCSYNC_NOW")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    Some((out.status.code().unwrap_or(-1), text))
}

/// Issue 15: `--once` on a terminal ended with one line of JSON, and `--dry-run` said nothing
/// when there was nothing to do. On a terminal both now end with the per-flow summary `demo`
/// prints; piped, `--once` stays one JSON line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_once_and_dry_run_end_with_the_readable_summary() {
    let h = Harness::new(12, 50).await;
    let cfg = h.write_config();
    let cfg = cfg.to_str().unwrap();
    let Some((code, shown)) = tokio::task::spawn_blocking({
        let cfg = cfg.to_string();
        move || on_a_terminal(&["--config", &cfg, "--once"])
    })
    .await
    .unwrap() else {
        eprintln!("no `script` here: the terminal snapshot is skipped");
        return;
    };
    assert_eq!(code, 0, "{shown}");
    let summary = &shown[shown
        .find("crego-credgenics-sync --once")
        .unwrap_or_else(|| panic!("{shown}"))..];
    insta::with_settings!({filters => vec![(r"requests: .*", "requests: [per API]")]}, {
        insta::assert_snapshot!("once_on_a_terminal", summary);
    });
    assert!(!summary.trim_start().starts_with('{'), "not JSON on a terminal");

    // Nothing left to do: the dry run says so instead of printing nothing.
    let (code, shown) = tokio::task::spawn_blocking({
        let cfg = cfg.to_string();
        move || on_a_terminal(&["--config", &cfg, "--dry-run"]).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("dry run: nothing to send; nothing was written"),
        "{shown}"
    );
    assert!(shown.contains("  A  leads scanned"), "{shown}");

    // Piped, --once stays one JSON line; --json keeps it JSON on a terminal too.
    let out = run(&["--config", cfg, "--once"], &[]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON line when piped");
    assert_eq!(report["outcome"], "clear");
    let (_, shown) = tokio::task::spawn_blocking({
        let cfg = cfg.to_string();
        move || on_a_terminal(&["--config", &cfg, "--once", "--json"]).unwrap()
    })
    .await
    .unwrap();
    // (after the spinner's last frame and its clear-line code)
    assert!(
        shown.contains("{\"place_loans\":") && shown.contains("\"outcome\":\"clear\"}"),
        "{shown}"
    );
}
