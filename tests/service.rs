//! Daemon mode as an operator runs it: schedules without overlap, catch-up after a restart,
//! SIGTERM, readiness, metrics, logs without secrets, and the operator commands.

mod common;
use common::ExitCode;

use std::time::Duration;

use common::{Harness, NEVER, binary, overdue_loan_ids, wait_for};
use crego_credgenics_sync::partners::http::Api;
use crego_credgenics_sync::store::{LoanState, Store};
use serde_json::{Value, json};

fn schedules(place_loans: &str) -> String {
    common::schedules(place_loans, NEVER, NEVER, NEVER)
}

/// The line-details list requests as runs: each run reads by key, so its `(updated_at__gte,
/// page)` only grows; a request that does not go beyond the one before starts another run.
fn list_runs(h: &Harness) -> Vec<Vec<(f64, u64)>> {
    let mut runs: Vec<Vec<(f64, u64)>> = Vec::new();
    for r in h.sb.requests().iter().filter(|r| r.path == "/v1/lms/line-details/") {
        let key = (
            r.query["updated_at__gte"].parse::<f64>().unwrap(),
            r.query["page"].parse::<u64>().unwrap(),
        );
        match runs.last_mut() {
            Some(run)
                if run
                    .last()
                    .is_some_and(|last| key.0 > last.0 || (key.0 == last.0 && key.1 > last.1)) =>
            {
                run.push(key)
            }
            _ => runs.push(vec![key]),
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_outlasts_its_interval_is_not_started_twice() {
    let mut h = Harness::new(40, 30).await;
    h.edit("page_size", "4");
    h.edit_append(&schedules("* * * * * *"));
    // Every Crego answer takes 60 ms: a run (10 pages and the lead look-ups) takes well over the
    // one-second interval.
    h.sb.set_delay(Api::Crego, Duration::from_millis(60));
    let d = h.start_daemon().await;
    wait_for("two runs", 20, || list_runs(&h).len() >= 2).await;
    assert_eq!(d.stop().await, 0);
    // Runs are whole reads of the stream one after the other, never interleaved: every run but
    // the last (stopped) one reaches the end of the stream, and reads it in more than a few pages.
    let runs = list_runs(&h);
    let end = runs.iter().flatten().map(|k| k.0).fold(0.0, f64::max);
    for run in &runs[..runs.len() - 1] {
        assert_eq!(run.last().unwrap().0, end, "interleaved runs: {runs:?}");
        assert!(run.len() >= 10, "a run went through all pages: {runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_slot_is_caught_up_once_after_restart() {
    let mut h = Harness::new(10, 30).await;
    h.edit_append(&schedules("0 0 * * * *")); // hourly
    // The daemon last ran place_loans two hours ago: at least one hourly slot was missed.
    let two_hours_ago = jiff::Timestamp::now().as_second() as f64 - 7200.0;
    h.live_store()
        .record_job("place_loans", two_hours_ago, None, two_hours_ago)
        .unwrap();

    let d = h.start_daemon().await;
    wait_for("the catch-up run", 10, || !list_runs(&h).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(d.stop().await, 0);
    assert_eq!(list_runs(&h).len(), 1, "caught up once, not once per missed slot");
    let overdue = overdue_loan_ids(&h.sb).len();
    assert_eq!(h.sb.state().cg_loans.len(), overdue);

    // Restarted again within the hour: nothing was missed, nothing runs.
    let d = h.start_daemon().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(d.stop().await, 0);
    assert_eq!(list_runs(&h).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_run_exits_0_and_the_next_once_completes_without_duplicates() {
    let mut h = Harness::new(1500, 30).await;
    h.edit("page_size", "50");
    h.edit_append(&schedules("* * * * * *"));
    h.sb.set_delay(Api::Credgenics, Duration::from_millis(5));
    let config = h.write_config();
    let child = tokio::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Let a run get going, then SIGTERM mid-run.
    wait_for("uploads", 30, || h.sb.state().cg_loans.len() >= 20).await;
    let overdue = overdue_loan_ids(&h.sb).len();
    assert!(h.sb.state().cg_loans.len() < overdue, "still mid-run");
    let (code, _, logs) = common::terminate(child).await;
    assert_eq!(code, Some(0), "{logs}");
    // State committed: nothing half-written is left in doubt by a graceful stop.
    assert!(h.store().loans_in_state(LoanState::Uploading).unwrap().is_empty());

    let out = std::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "--once"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let s = h.sb.state();
    assert_eq!(s.cg_loans.len(), s.overdue_programs(1).len(), "the rest completed");
    for (id, l) in &s.cg_loans {
        assert!(l.uploads_per_month.values().all(|n| *n == 1), "{id} uploaded twice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_when_a_cursor_is_stuck_and_names_it() {
    let mut h = Harness::new(10, 30).await;
    h.edit_append("[daemon]\nstuck_after_secs = 60\n");
    h.edit_append(&schedules(NEVER));
    assert_eq!(h.once().await.exit_code(), 0);
    let d = h.start_daemon().await;
    let get = |path: &str| {
        let url = d.admin_url(path);
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await, (200, "ready\n".to_string()));

    // The records stream keeps failing for two minutes (by the daemon's clock) while the
    // line-details stream is read fine.
    h.sb.fail_next_on(Api::Crego, Some("GET /v1/lms/records/"), 1000, 500, None);
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120)).to_string();
    let report = h.once_at(&later).await;
    assert_eq!(
        report.exit_code(),
        3,
        "the records stream unreachable: the run could not complete"
    );
    let (code, body) = {
        // readiness is judged on the daemon's clock: move it the same two minutes
        let config = h.config();
        let state = crego_credgenics_sync::server::AdminState {
            clock: crego_credgenics_sync::clock::Clock::starting_at(
                later.parse().unwrap(),
                config.sync.timezone.clone(),
            ),
            config: config.clone(),
            store: h.live_store(),
        };
        let reason =
            crego_credgenics_sync::server::not_ready(&config, &state.store, state.clock.now().as_second() as f64);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        tokio::spawn(crego_credgenics_sync::server::serve_admin(
            listener,
            state,
            std::future::pending(),
        ));
        let r = reqwest::get(url).await.unwrap();
        assert!(reason.is_some());
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(code, 503);
    assert!(body.contains("cursor `records` stuck"), "{body}");
    assert!(
        !body.contains("line_details"),
        "the healthy stream is not blamed: {body}"
    );
    assert_eq!(d.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_after_a_cycle() {
    let mut h = Harness::new(10, 50).await;
    h.edit_append(&schedules(NEVER));
    let d = h.start_daemon().await;
    let scrape = || {
        let url = d.admin_url("/metrics");
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            let lines = text.lines().map(|l| Ok(l.to_string()));
            prometheus_parse::Scrape::parse(lines).expect("Prometheus text")
        }
    };
    let value = |s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]| -> f64 {
        s.samples
            .iter()
            .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let before = scrape().await;
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0);
    let after = scrape().await;
    let crego_ok =
        |s: &prometheus_parse::Scrape| value(s, "ccsync_http_requests_total", &[("api", "crego"), ("status", "200")]);
    assert!(crego_ok(&after) > crego_ok(&before), "request counter moved");
    let placed = overdue_loan_ids(&h.sb).len() as f64;
    assert_eq!(value(&after, "ccsync_loans", &[("state", "placed")]), placed);
    assert!(after.samples.iter().any(|x| x.metric == "ccsync_cursor_lag_seconds"));
    assert!(after.samples.iter().any(|x| x.metric == "ccsync_ledger_rows"));
    assert_eq!(d.stop().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_capture_of_a_full_cycle_holds_no_token_and_no_unmasked_pii() {
    let mut h = Harness::new(30, 40).await;
    h.edit_append(
        "[mapping.loan]\napplicant_pan_number = '\"ABCDE1234F\"'\napplicant_aadhar_number = '\"235498671293\"'\n",
    );
    // One rejected loan, so its field error (a phone number) goes through the logs too.
    let bad = {
        let mut s = h.sb.state();
        let lead = s.overdue_programs(1)[0]["lead_id"].as_str().unwrap().to_string();
        s.leads.get_mut(&lead).unwrap()["mobile"] = json!("5551234567");
        lead
    };
    let phones: Vec<String> =
        h.sb.state()
            .leads
            .values()
            .map(|l| l["mobile"].as_str().unwrap().to_string())
            .collect();
    let config = h.write_config();
    for json_logs in [true, false] {
        let out = std::process::Command::new(binary())
            .args(["--config", config.to_str().unwrap(), "--once"])
            .env("RUST_LOG", "debug")
            .env("CCSYNC_LOG__FORMAT", if json_logs { "json" } else { "human" })
            .output()
            .unwrap();
        let logs = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert!(logs.len() > 1000, "debug logs were captured");
        let cfg = h.sb.config();
        for secret in [&cfg.crego_token, &cfg.credgenics_token, &cfg.webhook_token] {
            assert!(!logs.contains(secret.as_str()), "token in logs");
        }
        for p in &phones {
            assert!(!logs.contains(p.as_str()), "phone {p} unmasked in logs (lead {bad})");
        }
        assert!(
            !logs.contains("ABCDE1234F") && !logs.contains("235498671293"),
            "PAN/Aadhaar in logs"
        );
        if json_logs {
            // (the second pass does not send the same refused payload again)
            assert!(
                logs.contains("loan_rejected") && logs.contains("******4567"),
                "the rejection was logged, masked"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_dead_letters_work_while_the_daemon_runs() {
    let mut h = Harness::new(20, 40).await;
    h.edit_append(&schedules("* * * * * *"));
    let lead = {
        let mut s = h.sb.state();
        let p = s.overdue_programs(1)[0].clone();
        s.leads.get_mut(p["lead_id"].as_str().unwrap()).unwrap()["mobile"] = json!("12345");
        p["lead_id"].as_str().unwrap().to_string()
    };
    let config = h.write_config();
    let mut daemon = tokio::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = std::process::Command::new(binary()).args(&all).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let overdue = overdue_loan_ids(&h.sb).len();
    wait_for("placement", 20, || h.sb.state().cg_loans.len() == overdue - 1).await;

    let (code, out) = cli(&["status", "--json"]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["loans"]["placed"].as_u64().unwrap() as usize, overdue - 1);
    assert_eq!(status["dead_letters"], 1);
    let (code, human) = cli(&["status"]);
    assert_eq!(code, 0);
    assert!(human.contains("cursors") && human.contains("line_details") && human.contains("dead letters: 1"));

    let (code, out) = cli(&["dead-letters", "list", "--json"]);
    assert_eq!(code, 0);
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("loan:"));
    // The field errors as JSON (issue 15), not JSON inside a string.
    assert!(list[0]["reason"].is_object(), "{}", list[0]);
    assert!(list[0]["reason"].to_string().contains("applicant_contact_number"));

    // Ignore it, then (the lead's number fixed in the LMS) retry it: the running daemon places it.
    let (code, _) = cli(&["dead-letters", "ignore", &id, "--reason", "checking with the branch"]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&cli(&["status", "--json"]).1).unwrap();
    assert_eq!(status["dead_letters"], 0);
    h.sb.state().leads.get_mut(&lead).unwrap()["mobile"] = json!("9876501234");
    let (code, out) = cli(&["dead-letters", "retry", &id]);
    assert_eq!(code, 0, "{out}");
    wait_for("the retried loan placed", 20, || h.sb.state().cg_loans.len() == overdue).await;
    assert_eq!(cli(&["dead-letters", "retry", "payment:999"]).0, 1, "not a dead letter");
    assert_eq!(cli(&["dead-letters", "retry"]).0, 2, "an id or --all is needed");

    let pid = daemon.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert_eq!(daemon.wait().await.unwrap().code(), Some(0));
    let store = Store::open_read_only(&h.state).unwrap();
    assert_eq!(crego_credgenics_sync::flows::unresolved(&store).unwrap(), 0);
}
