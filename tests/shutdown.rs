//! Stopping and hanging (issue 11): SIGTERM's grace is a hard bound whatever the daemon is
//! waiting on, a hung job stops the systemd watchdog being fed, a mapping that never ends costs
//! one dead letter, and idle or half-sent connections cannot take the listener down. Against the
//! release-like binary where the process boundary is the point.

mod common;
use common::ExitCode;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Harness, NEVER, binary, schedules, terminate};
use crego_credgenics_sync::partners::http::Api;
use crego_credgenics_sync::store::LoanState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GRACE_SECS: u64 = 2;

/// Starts daemon mode as a child process (systemd's way: `WATCHDOG_PID` is its own pid).
fn spawn_daemon(config: &Path, env: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args([
        "-c",
        "WATCHDOG_PID=$$ exec \"$0\" --config \"$1\"",
        binary(),
        config.to_str().unwrap(),
    ])
    .env("RUST_LOG", "info")
    .env("CCSYNC_LOG__FORMAT", "json")
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// No loan uploaded twice for a month, no payment reference twice on a loan.
fn assert_no_duplicate(h: &Harness) {
    let s = h.sb.state();
    for (id, l) in &s.cg_loans {
        assert!(l.uploads_per_month.values().all(|n| *n == 1), "{id} uploaded twice");
        let refs: BTreeSet<_> = l
            .payment_history
            .iter()
            .map(|p| p["payment_reference_number"].to_string())
            .collect();
        assert_eq!(refs.len(), l.payment_history.len(), "{id}: a payment twice");
    }
}

/// The harness's config for a daemon whose place-loans job runs every 2 s (others never), with
/// a 2 s grace and `daemon` (more `[daemon]` keys).
fn daemon_config(h: &mut Harness, daemon: &str) {
    h.edit_append(&format!("[daemon]\nshutdown_grace_secs = {GRACE_SECS}\n{daemon}"));
    h.edit_append(&schedules("*/2 * * * * *", NEVER, NEVER, NEVER));
}

/// Runs `--once` with the harness's (current) config; its exit code.
fn once(config: &Path) -> Option<i32> {
    std::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "--once"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
        .status
        .code()
}

/// Regression: with a mapping that never ended, SIGTERM was ignored and `--once` ran 10 min
/// until SIGKILL. Now the process exits within the grace (+1 s), exit 0, whatever it waits on:
/// a mapping past its budget, a `Retry-After: 3600`, look-ups at a partner that has gone quiet.
/// The next `--once` completes and sends nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_a_hard_bound_while_a_mapping_runs_away_a_retry_after_waits_or_look_ups_hang() {
    for case in ["runaway mapping", "retry-after 3600", "look-ups"] {
        let mut h = Harness::new(12, 50).await;
        daemon_config(&mut h, "");
        match case {
            "runaway mapping" => {
                // The budget is longer than the test: the evaluation is still running at SIGTERM.
                h.edit_append("[mapping]\nbudget_ms = 60000\n[mapping.loan]\ntags = \"def f: f; f\"\n");
            }
            "retry-after 3600" => {
                // Honoured in full (the first `max_in_flight` is Crego's).
                h.edit("max_in_flight", "8\nmax_retry_after_secs = 3600");
                h.sb.fail_next_on(Api::Crego, Some("GET /v1/lms/line-details/"), 1, 429, Some(3600));
            }
            _ => {
                // An earlier run's uploads are left in doubt; the partner then answers nothing
                // for a minute, so the daemon's first job is stuck looking them up.
                h.sb.lose_answer_of_next(Api::Credgenics, Some("POST /recovery/loan/"), 3, 502);
                assert_eq!(h.once().await.exit_code(), 1, "{case}: uploads left in doubt");
                assert!(!h.store().loans_in_state(LoanState::Uploading).unwrap().is_empty());
                h.close_store();
                h.sb.set_delay(Api::Credgenics, Duration::from_secs(60));
            }
        }
        let config = h.write_config();
        let child = spawn_daemon(&config, &[]);
        // The first slot is at most 2 s away; give the job time to be deep in its wait.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (code, took, logs) = terminate(child).await;
        assert_eq!(code, Some(0), "{case}: {logs}");
        assert!(
            took <= Duration::from_secs(GRACE_SECS + 1),
            "{case}: exit took {took:?}\n{logs}"
        );
        assert!(logs.contains("\"job_started\""), "{case}: the job was running: {logs}");

        // The next run, with the partner and the mapping mended, completes without a duplicate.
        h.sb.set_delay(Api::Credgenics, Duration::ZERO);
        let mended = std::fs::read_to_string(&config)
            .unwrap()
            .replace("budget_ms = 60000", "budget_ms = 1000")
            .replace("tags = \"def f: f; f\"", "tags = \"null\"");
        std::fs::write(&config, mended).unwrap();
        assert_eq!(once(&config), Some(0), "{case}: the next --once completes");
        let s = h.sb.state();
        assert_eq!(s.cg_loans.len(), s.overdue_programs(1).len(), "{case}: all placed");
        drop(s);
        assert_no_duplicate(&h);
    }
}

/// Regression: the watchdog was fed by idle job loops, so one hung job never tripped it. Here
/// one job waits on a partner that does not answer while the others stay idle: the watchdog
/// pings (seen on the notify socket this test provides) stop, and the log names the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_job_stops_the_watchdog_being_fed() {
    let mut h = Harness::new(6, 50).await;
    daemon_config(&mut h, "job_stall_secs = 2\n");
    // Crego's (the first `timeout_secs`): the request hangs rather than fails.
    h.edit("timeout_secs", "120");
    h.sb.set_delay(Api::Crego, Duration::from_secs(120));
    let config = h.write_config();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let child = spawn_daemon(
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "600000"),
        ],
    );
    let started = Instant::now();
    let mut pings = Vec::new();
    let mut ready = false;
    let mut buf = [0u8; 512];
    while started.elapsed() < Duration::from_secs(11) {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        ready |= msg.contains("READY=1");
        if msg.contains("WATCHDOG=1") {
            pings.push(started.elapsed());
        }
    }
    let (_, _, logs) = terminate(child).await;
    assert!(ready, "READY=1 was sent: {logs}");
    assert!(
        pings.iter().any(|t| *t < Duration::from_secs(2)),
        "fed while every job was idle: {pings:?}"
    );
    // The job starts by 2 s and is silent past 2 s by 4 s; pings are 300 ms apart.
    let late: Vec<_> = pings.iter().filter(|t| **t > Duration::from_secs(6)).collect();
    assert!(late.is_empty(), "fed though a job hung: {pings:?}\n{logs}");
    assert!(
        logs.contains("watchdog_withheld") && logs.contains("job place_loans has made no progress"),
        "{logs}"
    );
}

/// Regression (finding 2): `def f: f; f` froze the daemon. Under the budget, the one loan whose
/// mapping overruns it is a dead letter naming the field; every other loan is placed and the run
/// completes. (The expression here ends some seconds later, so its abandoned worker does not
/// spin through this binary's other, timing-sensitive tests; the endless case is the SIGTERM
/// test's, in its own process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_mapping_is_a_dead_letter_naming_its_field_and_the_run_goes_on() {
    let mut h = Harness::new(12, 50).await;
    let victim = common::overdue_loan_ids(&h.sb)[0].clone();
    h.edit_append(&format!(
        "[mapping]\nbudget_ms = 200\n[mapping.loan]\ntags = 'if .program.ref_id == \"{victim}\" then last(range(1e7)) else null end'\n"
    ));
    let started = Instant::now();
    let report = h.once().await;
    assert!(started.elapsed() < Duration::from_secs(30), "the run was not held");
    assert_eq!(report.exit_code(), 1, "{report:?}");
    let s = h.sb.state();
    assert_eq!(
        s.cg_loans.len(),
        s.overdue_programs(1).len() - 1,
        "every other loan placed"
    );
    assert!(!s.cg_loans.contains_key(&victim));
    drop(s);
    let rejected = h.store().loans_in_state(LoanState::Rejected).unwrap();
    assert_eq!(rejected.len(), 1);
    let reason = rejected[0].last_error.clone().unwrap_or_default();
    assert!(
        reason.contains("`tags`") && reason.contains("budget of 200 ms"),
        "{reason}"
    );
}

/// Regression (finding 3): idle and half-sent connections stayed open after 420 s and 300 of
/// them took `/healthz` and the webhook down. Now connections past the cap wait in the backlog,
/// idle ones are closed after `webhook.idle_timeout_secs`, and health answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_closed_and_cannot_exhaust_the_listener() {
    let mut h = Harness::new(2, 50).await;
    h.edit(
        "token",
        &format!(
            "\"{}\"\nmax_connections = 16\nidle_timeout_secs = 2",
            common::WEBHOOK_TOKEN
        ),
    );
    h.edit_append(&schedules(NEVER, NEVER, NEVER, NEVER));
    let d = h.start_daemon().await;
    // Twice the cap: silent sockets and sockets that stop half-way through their headers.
    let mut held = Vec::new();
    for i in 0..32 {
        let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"POST /webhooks/credgenics HTTP/1.1\r\nHost: x\r\nContent-Le")
                .await
                .unwrap();
        }
        held.push(s);
    }
    // Health answers while they are held, once idle ones are closed to make room.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let asked = Instant::now();
    let r = client.get(d.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(asked.elapsed() < Duration::from_secs(8), "{:?}", asked.elapsed());
    // Every held connection is closed by the daemon (EOF or reset), none kept open.
    for (i, mut s) in held.into_iter().enumerate() {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "connection {i} still open");
    }
    assert_eq!(d.stop().await, 0);
}

/// `--once` on SIGTERM: the shutdown token cuts the `Retry-After: 3600` wait short, so the run
/// ends at once — well inside the grace, exit 0, nothing half-done — instead of by the grace's
/// hard bound (which would exit 3 and say so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_stops_at_sigterm_by_cutting_its_waits_short() {
    let mut h = Harness::new(6, 50).await;
    h.edit_append("[daemon]\nshutdown_grace_secs = 30\n");
    h.edit("max_in_flight", "8\nmax_retry_after_secs = 3600");
    h.sb.fail_next_on(Api::Crego, Some("GET /v1/lms/line-details/"), 1, 429, Some(3600));
    let config = h.write_config();
    let child = tokio::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "--once"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, took, logs) = terminate(child).await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(took < Duration::from_secs(3), "took {took:?}: {logs}");
    assert!(logs.contains("run_interrupted"), "{logs}");
    assert_eq!(once(&config), Some(0), "the next run completes");
    assert_no_duplicate(&h);
}

/// A client trickling its request one byte a second is never idle; it is cut once its request
/// has taken longer than the idle timeout plus the time a body may take (2 s + 10 s here), so
/// 512 of them cannot hold the listener for the connections' whole lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_request_is_cut_after_the_idle_timeout_plus_the_body_time() {
    let mut h = Harness::new(2, 50).await;
    h.edit(
        "token",
        &format!("\"{}\"\nidle_timeout_secs = 2", common::WEBHOOK_TOKEN),
    );
    h.edit_append(&schedules(NEVER, NEVER, NEVER, NEVER));
    let d = h.start_daemon().await;
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let started = Instant::now();
    let request = b"POST /webhooks/credgenics HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut_at = None;
    for byte in request.iter().cycle() {
        if s.write_all(&[*byte]).await.is_err() {
            cut_at = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            cut_at = Some(started.elapsed());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never cut");
    }
    let cut_at = cut_at.unwrap();
    assert!(cut_at >= Duration::from_secs(11), "cut early at {cut_at:?}");
    assert_eq!(d.stop().await, 0);
}

/// SIGHUP (a terminal closing, a `kill -HUP` by habit) used to end the daemon: it is logged and
/// ignored, and SIGTERM still stops it cleanly (issue 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_logged_and_ignored() {
    let mut h = Harness::new(2, 50).await;
    daemon_config(&mut h, "");
    let config = h.write_config();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let mut child = spawn_daemon(&config, &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())]);
    let mut buf = [0u8; 512];
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = socket.recv(&mut buf).await.unwrap();
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                return;
            }
        }
    })
    .await;
    assert!(ready.is_ok(), "the daemon became ready");
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP ended the daemon");
    let (code, _, logs) = terminate(child).await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("hangup_ignored"), "{logs}");
}
