//! What an operator sees of the daemon run as a service (issue 15): `/metrics` on the admin
//! listener that alert rules can use, a last-success gauge that survives a restart, and a log
//! line for every failure — a dead letter, a refused webhook, a refused credential.

mod common;

use std::path::Path;
use std::time::Duration;

use common::ExitCode;
use common::{Harness, NEVER, binary, overdue_lines, schedules, terminate};

/// A free loopback port (bound, then released for the daemon to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(config: &Path, env: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.args(["--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("CCSYNC_LOG__FORMAT", "json")
        .env_remove("CCSYNC_NOW")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// GETs `url` until it answers 200 (30 s at most); the body.
async fn get_when_up(url: &str) -> String {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return r.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not answer");
}

/// Fails with the daemon's log when it has exited.
async fn alive(child: &mut tokio::process::Child) {
    if let Ok(Some(status)) = child.try_wait() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut err).await;
        }
        panic!("the daemon exited ({status}):\n{err}");
    }
}

/// Asserts a `# HELP` line for every `# TYPE`d family; how many families there are.
fn every_family_has_help(text: &str) -> usize {
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for family in &typed {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}:\n{text}"
        );
    }
    typed.len()
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

fn gauge(s: &prometheus_parse::Scrape, name: &str, label: (&str, &str)) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && x.labels.get(label.0) == Some(label.1))
        .and_then(|x| match x.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_help_histograms_build_info_and_last_success_right_after_a_restart() {
    let mut h = Harness::new(6, 50).await;
    let admin = free_port();
    let admin_env = format!("127.0.0.1:{admin}");
    let env = [("CCSYNC_ADMIN__LISTEN", admin_env.as_str())];
    let every = "*/1 * * * * *";
    h.edit_append(&schedules(every, NEVER, NEVER, NEVER));
    let config = h.write_config();
    let metrics_url = format!("http://127.0.0.1:{admin}/metrics");

    let mut child = spawn(&config, &env);
    tokio::time::sleep(Duration::from_millis(500)).await;
    alive(&mut child).await;
    let mut first = None;
    for _ in 0..200 {
        let s = parse(&get_when_up(&metrics_url).await);
        if let Some(v) = gauge(&s, "ccsync_job_last_success_timestamp_seconds", ("task", "place_loans")) {
            first = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = first.expect("place_loans succeeded and its gauge was set");
    let (code, _, logs) = terminate(child).await;
    assert_eq!(code, Some(0), "{logs}");

    // Restarted with the job never due: the gauge is there from the first scrape, as stored.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap().replace(every, NEVER)).unwrap();
    let child = spawn(&config, &env);
    let text = get_when_up(&metrics_url).await;
    let (code, _, logs) = terminate(child).await;
    assert_eq!(code, Some(0), "{logs}");
    let s = parse(&text);
    let restored = gauge(&s, "ccsync_job_last_success_timestamp_seconds", ("task", "place_loans"));
    assert_eq!(restored, Some(first), "{text}");

    assert!(every_family_has_help(&text) >= 5, "{text}");
    // Durations are histograms (the first run's requests are in the first process; the restarted
    // one has the token and state reads of its own only, so look at the type lines).
    assert!(
        text.contains("# TYPE ccsync_job_duration_seconds histogram") || !text.contains("ccsync_job_duration_seconds"),
        "{text}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        s.samples
            .iter()
            .any(|x| x.metric == "ccsync_build_info" && x.labels.get("version") == Some(version)),
        "{text}"
    );
    assert!(!logs.contains("\"level\":\"ERROR\""), "{logs}");
}

/// The histograms of a cycle: request and job durations with their buckets, in one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_job_durations_are_histograms_and_the_webhook_port_has_no_metrics() {
    let mut h = Harness::new(6, 50).await;
    h.edit_append(&schedules("*/1 * * * * *", NEVER, NEVER, NEVER));
    let d = h.start_daemon().await;
    let mut text = String::new();
    for _ in 0..100 {
        text = reqwest::get(d.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("ccsync_job_duration_seconds_bucket") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = parse(&text);
    assert!(every_family_has_help(&text) >= 10, "{text}");
    for name in ["ccsync_http_request_duration_seconds", "ccsync_job_duration_seconds"] {
        assert!(text.contains(&format!("# TYPE {name} histogram")), "{name}:\n{text}");
        assert!(
            s.samples
                .iter()
                .any(|x| x.metric == name && matches!(x.value, prometheus_parse::Value::Histogram(_))),
            "{name}:\n{text}"
        );
    }
    let placed = s
        .samples
        .iter()
        .find(|x| x.metric == "ccsync_loans_placed_total")
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        });
    assert!(placed.is_some_and(|v| v >= 1.0), "{text}");
    let on_webhook = reqwest::get(d.url("/metrics")).await.unwrap();
    assert_eq!(on_webhook.status(), 404, "metrics are on the admin listener only");
    assert_eq!(reqwest::get(d.url("/healthz")).await.unwrap().status(), 200);
    assert_eq!(d.stop().await, 0);
}

/// Regression (issue 15): preflight dead letters were only counted, webhook 401/400s and a
/// refused credential reached no log. Each now has its line (and its counter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_capture_shows_a_dead_letter_a_webhook_refusal_and_a_refused_credential() {
    let mut h = Harness::new(8, 50).await;
    assert_eq!(h.once().await.exit_code(), 0);
    h.close_store();
    let (loan, bp, _) = overdue_lines(&h.sb)[0].clone();
    // A repayment the mapping turns into a payment the preflight refuses.
    h.edit_append("[mapping.payment]\npayment_method = '\"Bitcoin\"'\n");
    h.sb.repayment(&bp, rust_decimal::Decimal::from(10), "UTR-DEAD-1");
    let port = free_port();
    h.edit("listen", &format!("\"127.0.0.1:{port}\""));
    h.edit_append(&schedules(NEVER, "*/1 * * * * *", NEVER, NEVER));
    let config = h.write_config();

    let mut child = spawn(&config, &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    alive(&mut child).await;
    let hook = format!("http://127.0.0.1:{port}{}", crego_credgenics_sync::server::WEBHOOK_PATH);
    get_when_up(&format!("http://127.0.0.1:{port}/healthz")).await;
    let client = reqwest::Client::new();
    let r = client
        .post(&hook)
        .header("x-webhook-token", "wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client
        .post(&hook)
        .header("x-webhook-token", common::WEBHOOK_TOKEN)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Let the push job take the repayment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, _, logs) = terminate(child).await;
    assert_eq!(code, Some(0), "{logs}");
    let line = |event: &str| {
        logs.lines()
            .find(|l| l.contains(&format!("\"event\":\"{event}\"")))
            .unwrap_or_else(|| panic!("no {event} line in:\n{logs}"))
            .to_string()
    };
    let dead = line("payment_dead");
    assert!(dead.contains(&loan) && dead.contains("payment_method"), "{dead}");
    assert!(line("webhook_unauthorised").contains("WARN"));
    assert!(line("webhook_refused").contains("body_not_json"));

    // A refused credential: Crego no longer takes the token.
    let child = spawn(&config, &[("CCSYNC_CREGO__BEARER_TOKEN", "revoked")]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, _, logs) = terminate(child).await;
    let refused = logs
        .lines()
        .find(|l| l.contains("\"event\":\"credential_refused\""))
        .unwrap_or_else(|| panic!("no credential_refused line in:\n{logs}"));
    assert!(
        refused.contains("\"api\":\"crego\"") && refused.contains("ERROR"),
        "{refused}"
    );
    assert!(!logs.contains("revoked"), "the token is not logged");
}

/// `docs/alerts.yml` is valid Prometheus rules (by `promtool` when installed) and names only
/// metrics the daemon exports, so a renamed metric cannot leave an alert silently dead.
#[test]
fn the_alert_rules_check_and_name_only_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.yml");
    let text = std::fs::read_to_string(path).unwrap();
    match std::process::Command::new("promtool")
        .args(["check", "rules", path])
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("promtool not installed ({e}): the rules are parsed only"),
    }
    let known: Vec<&str> = crego_credgenics_sync::telemetry::metric::HELP
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let mut alerts = 0;
    for rule in text.split("- alert: ").skip(1) {
        alerts += 1;
        let name = rule.lines().next().unwrap().trim();
        for key in [
            "expr: ",
            "labels:",
            "severity: ",
            "annotations:",
            "summary: ",
            "description: ",
        ] {
            assert!(rule.contains(key), "alert {name} has no `{key}`");
        }
        let expr = rule.split("expr: ").nth(1).unwrap().lines().next().unwrap();
        let mut named = 0;
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(metric) = word.strip_prefix("ccsync_") {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| metric.strip_suffix(s))
                    .unwrap_or(metric);
                assert!(
                    known.contains(&format!("ccsync_{base}").as_str()),
                    "alert {name} names ccsync_{metric}, which the daemon does not export"
                );
                named += 1;
            }
        }
        assert!(
            named > 0 || expr.contains("up{"),
            "alert {name} names no metric: {expr}"
        );
    }
    assert!(alerts >= 5, "{alerts} alerts");
    for topic in [
        "CursorStuck",
        "JobNotSucceeding",
        "DeadLetters",
        "ReconcileFindings",
        "CredentialRefused",
    ] {
        assert!(text.contains(&format!("alert: Ccsync{topic}")), "no {topic} alert");
    }
}

/// Issue 15: JSON fields were nested under `fields`, no id grouped a cycle's lines, `target` was
/// always the telemetry module, and `journalctl -p warning` found nothing. Under journald (its
/// `JOURNAL_STREAM` naming stderr) each line now starts with its syslog priority, and each JSON
/// line is flat, with the cycle's `job` and `run_id` and the daemon part as `target`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_journald_lines_carry_their_priority_and_json_is_flat_with_the_cycle_ids() {
    use std::os::unix::fs::MetadataExt;
    let h = Harness::new(10, 50).await;
    // One loan the preflight refuses (an invalid mobile): a warning among the info lines.
    {
        let mut s = h.sb.state();
        let lead = s.overdue_programs(1)[0]["lead_id"].as_str().unwrap().to_string();
        s.leads.get_mut(&lead).unwrap()["mobile"] = serde_json::json!("5551234567");
    }
    let config = h.write_config();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("journal-stream");
    // `--once` with stderr to `log`; `journal`: JOURNAL_STREAM names that file, else another.
    let once = |log: &Path, journal: bool| {
        let file = std::fs::File::create(log).unwrap();
        let meta = file.metadata().unwrap();
        let stream = if journal {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            "1:2".to_string()
        };
        std::process::Command::new(binary())
            .args(["--config", config.to_str().unwrap(), "--once"])
            .env("JOURNAL_STREAM", stream)
            .env("CCSYNC_LOG__FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("CCSYNC_NOW")
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .status()
            .unwrap()
    };
    assert_eq!(once(&log, true).code(), Some(1), "one loan rejected");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut run_ids = std::collections::BTreeSet::new();
    let mut priorities = std::collections::BTreeSet::new();
    for line in text.lines() {
        let (prefix, json) = line.split_at(3);
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"));
        let expected = match v["level"].as_str().unwrap() {
            "ERROR" => "<3>",
            "WARN" => "<4>",
            "INFO" => "<6>",
            _ => "<7>",
        };
        assert_eq!(prefix, expected, "{line}");
        priorities.insert(prefix.to_string());
        assert!(v.get("fields").is_none(), "fields are flat: {line}");
        if v["event"] == "loan_placed" || v["event"] == "loan_rejected" {
            assert_eq!(v["job"], "once", "{line}");
            assert_eq!(v["target"], "ccsync::flows", "{line}");
            run_ids.insert(
                v["run_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no run_id: {line}"))
                    .to_string(),
            );
        }
    }
    assert!(priorities.contains("<4>") && priorities.contains("<6>"), "{text}");
    assert_eq!(run_ids.len(), 1, "one cycle, one run id: {run_ids:?}");
    assert_eq!(run_ids.iter().next().unwrap().len(), 8);

    // Not the journal (the variable names another file): no prefix.
    let other = dir.path().join("other");
    once(&other, false);
    let text = std::fs::read_to_string(&other).unwrap();
    assert!(text.lines().all(|l| l.starts_with('{')), "{text}");
}
