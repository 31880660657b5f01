//! Hardening (issue 11): what a partner, a bad config or a stranger on the network sends must not
//! lose money, leak a token or hang the daemon. Regression tests named after what broke.

mod common;
use common::ExitCode;

use common::{Harness, writes};
use crego_credgenics_sync::partners::http::Api;
use crego_credgenics_sync::store::Store;

/// A listener that counts the connections it is offered: where a redirect pointed.
async fn elsewhere() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((_conn, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (format!("http://{addr}/recovery/loan/stolen?token=leaked"), hits)
}

/// Regression: a Credgenics 307 to another host received every upload with the
/// `authenticationtoken` header; a 301 turned each POST into a GET whose 200 counted as an
/// upload (loans recorded placed, nothing uploaded). Neither client follows a redirect now: the
/// run stops naming where it pointed (without its query), and nothing is recorded as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_never_followed_and_stop_the_run_naming_where_they_pointed() {
    for status in [307u16, 301] {
        let h = Harness::new(10, 50).await;
        let (location, hits) = elsewhere().await;
        h.sb.redirect_next(Api::Credgenics, Some("POST /recovery/loan/"), 100, status, &location);
        let report = h.once().await;
        assert_eq!(report.exit_code(), 3, "{status}: {report:?}");
        let error = report.error.clone().unwrap();
        assert!(
            error.contains(&format!(
                "HTTP {status} redirecting to http://127.0.0.1/recovery/loan/stolen"
            )),
            "{error}"
        );
        assert!(
            error.contains("credgenics.base_url") && !error.contains("leaked"),
            "{error}"
        );
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing went where it pointed"
        );
        assert!(h.sb.state().cg_loans.is_empty());
        let store = Store::open_read_only(&h.state).unwrap();
        assert!(
            !store.loan_counts().unwrap().contains_key("placed"),
            "{:?}",
            store.loan_counts()
        );
        assert_eq!(report.place_loans.placed, 0);
        drop(store);
        // Once the endpoint answers again, the loans are placed, once each.
        h.sb.state().fail_next.clear();
        let report = h.once().await;
        assert_eq!(report.exit_code(), 0, "{report:?}");
        let uploads = writes(&h.sb.requests())
            .iter()
            .filter(|r| r.method == "POST" && r.status < 300)
            .count();
        assert_eq!(uploads, common::overdue_loan_ids(&h.sb).len());
    }
    // A Crego redirect is a redirect too, not "refused the credential".
    let h = Harness::new(5, 50).await;
    let (location, hits) = elsewhere().await;
    h.sb.redirect_next(Api::Crego, None, 100, 301, &location);
    let report = h.once().await;
    assert_eq!(report.exit_code(), 3);
    let error = report.error.unwrap();
    assert!(
        error.contains("redirecting") && error.contains("crego.base_url") && !error.contains("credential"),
        "{error}"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Regression: the single-instance lock was `path + ".lock"` taken literally, so the same state
/// file named through a symlink or a hardlink had a lock of its own, and two concurrent `--once`
/// both delivered every repayment. The lock is on the file itself now: of two runs started
/// together on one state file under two names, one is refused (exit 3), and no payment is sent
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_per_state_file_through_a_symlink_or_a_hardlink() {
    let h = Harness::new(20, 50).await;
    assert_eq!(h.once().await.exit_code(), 0);
    h.close_store();
    let loans: Vec<(String, String)> = {
        let store = Store::open_read_only(&h.state).unwrap();
        common::overdue_loan_ids(&h.sb)
            .into_iter()
            .map(|id| {
                let bp = store.loan(&id).unwrap().unwrap().borrower_program_id;
                (id, bp)
            })
            .collect()
    };
    // Every answer slowed down: the two runs overlap.
    h.sb.set_delay(Api::Crego, std::time::Duration::from_millis(150));
    let config = h.write_config();
    let text = std::fs::read_to_string(&config).unwrap();
    let symlink = h.dir.path().join("via-symlink.db");
    std::os::unix::fs::symlink(&h.state, &symlink).unwrap();
    let hardlink = h.dir.path().join("via-hardlink.db");
    std::fs::hard_link(&h.state, &hardlink).unwrap();
    for (round, other) in [&symlink, &hardlink].into_iter().enumerate() {
        for (i, (_, bp)) in loans.iter().enumerate() {
            h.sb.repayment(bp, rust_decimal::Decimal::from(10 + i), &format!("TWO-{round}-{i}"));
        }
        let other_config = h.dir.path().join(format!("other-{round}.toml"));
        std::fs::write(
            &other_config,
            text.replace(&h.state.display().to_string(), &other.display().to_string()),
        )
        .unwrap();
        let run = |cfg: std::path::PathBuf| {
            tokio::process::Command::new(common::binary())
                .args(["--config", cfg.to_str().unwrap(), "--once"])
                .output()
        };
        let (a, b) = tokio::join!(run(config.clone()), run(other_config));
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
        codes.sort();
        assert_eq!(
            codes,
            [0, 3],
            "one runs, one is refused: {}{}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        let refused = if a.status.code() == Some(3) { &a } else { &b };
        assert!(String::from_utf8_lossy(&refused.stderr).contains("in use by another"));
        for (i, (id, _)) in loans.iter().enumerate() {
            let utr = format!("TWO-{round}-{i}");
            let n = h.sb.state().cg_loans[id]
                .payment_history
                .iter()
                .filter(|p| p["payment_reference_number"] == utr.as_str())
                .count();
            assert_eq!(n, 1, "{utr} sent once");
        }
    }
}

/// Regression: a partner answering `has_next: true` for ever kept a run going (9 451 page
/// requests in 60 s), and one 222 MB page took the process to 3 GB. A page seen twice ends the read
/// with an error naming the stream; an answer over `max_response_bytes` is refused unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_pagination_and_oversized_pages_end_the_read_with_an_error() {
    let h = Harness::new(10, 50).await;
    h.sb.state().endless_pages = true;
    let report = h.once().await;
    assert_eq!(report.exit_code(), 3, "{report:?}");
    let error = report.error.unwrap();
    assert!(
        error.contains("LineDetails stream") && error.contains("seen twice"),
        "{error}"
    );
    let lists =
        h.sb.requests()
            .iter()
            .filter(|r| r.path == "/v1/lms/line-details/")
            .count();
    assert!(lists <= 5, "{lists} list requests");

    let mut h = Harness::new(10, 50).await;
    h.edit("max_in_flight", "8\nmax_response_bytes = 1048576");
    h.sb.state().page_padding = 2 << 20;
    let report = h.once().await;
    assert_eq!(report.exit_code(), 3, "{report:?}");
    let error = report.error.unwrap();
    assert!(error.contains("max_response_bytes"), "{error}");
}

/// Regression: webhook amounts and dates passed through unchecked — "250.50" and "1e3" as strings
/// were posted to the LMS as strings, 79228162514264337593543950335 was posted as a repayment, a
/// 5 000-digit decimal was sent in full, recovery dates in 1900 or 2099 were posted, the same
/// reference with another amount was silently dropped, and every answer said "accepted". Each is
/// now kept as a dead letter and answered "rejected"; only the sound payment reaches the LMS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_amounts_and_dates_are_checked_and_conflicts_are_dead_letters() {
    let h = Harness::new(10, 50).await;
    assert_eq!(h.once().await.exit_code(), 0);
    let url = h.listen().await;
    let loan = common::overdue_loan_ids(&h.sb)[0].clone();
    let event = |amount: &str, date: &str, reference: &str| {
        format!(
            r#"{{"event": "payment", "data": {{"loan_id": "{loan}", "amount_recovered": {amount},
               "final_status": "Partially Recovered", "recovery_method": "Field collection",
               "payment_method": "Cash", "payment_mode": "", "reference_number": "{reference}",
               "closure_with": "", "recovery_date": "{date}", "allocation_month": "2026-11-01",
               "author": "agent@example.com"}}, "created": "{date}"}}"#
        )
    };
    let today = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string();
    let huge = format!("1.{}", "3".repeat(5000));
    let cases = [
        (event("\"250.50\"", &today, "W-1"), "rejected", "not a JSON number"),
        (event("\"1e3\"", &today, "W-2"), "rejected", "not a JSON number"),
        (
            event("79228162514264337593543950335", &today, "W-3"),
            "rejected",
            "above webhook.max_amount",
        ),
        (event(&huge, &today, "W-4"), "rejected", ""),
        (
            event("100", "1900-01-01 10:00:00", "W-5"),
            "rejected",
            "outside the last ten years",
        ),
        (
            event("100", "2099-01-01 10:00:00", "W-6"),
            "rejected",
            "outside the last ten years",
        ),
        (event("123.45", &today, "W-7"), "stored", ""),
        (event("999", &today, "W-7"), "rejected", "seen again with amount 999"),
    ];
    let client = reqwest::Client::new();
    for (body, status, why) in &cases {
        let r = client
            .post(&url)
            .header("X-Webhook-Token", common::WEBHOOK_TOKEN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let said: serde_json::Value = r.json().await.unwrap();
        assert_eq!(said["status"], *status, "{said} for {}", &body[..body.len().min(160)]);
        assert!(said["detail"].as_str().unwrap_or_default().contains(why), "{said}");
    }
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1, "dead letters need attention: {report:?}");
    let written: Vec<serde_json::Value> =
        h.sb.state()
            .records
            .values()
            .filter(|r| r["utr"].as_str().is_some_and(|u| u.starts_with("W-")))
            .cloned()
            .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["amount"].to_string(), "123.45");
    let store = Store::open_read_only(&h.state).unwrap();
    assert_eq!(store.dead_letters().unwrap().len(), 7);
}

/// Regression: `http://` production URLs and URLs with `user:pass@` passed silently,
/// `bearer_token_file = "/dev/zero"` made `check-config` eat 7.6 GB, and a cron that never fires
/// (`0 0 0 30 2 *`) passed while its job silently stopped. Each is a keyed config error now.
#[tokio::test]
async fn config_refuses_clear_text_urls_credentials_in_urls_huge_secret_files_and_dead_crons() {
    let h = Harness::new(2, 50).await;
    let base = h.config_toml();
    let problems = |toml: &str| -> String {
        match crego_credgenics_sync::config::RawConfig::from_toml_str(toml)
            .map_err(|e| e.to_string())
            .and_then(|r| r.validate().map(|_| ()).map_err(|e| e.to_string()))
        {
            Ok(()) => String::new(),
            Err(e) => e,
        }
    };
    assert_eq!(problems(&base), "", "the sandbox config is valid (loopback http)");
    let crego_url = h.sb.crego_url();
    let e = problems(&base.replace(&crego_url, "http://lms.example.com"));
    assert!(e.contains("crego.base_url") && e.contains("https"), "{e}");
    let insecure = base
        .replace(&crego_url, "http://lms.example.com")
        .replace("page_size = 100", "page_size = 100\nallow_insecure_http = true");
    assert_eq!(problems(&insecure), "", "allowed when said so");
    let e = problems(&base.replace(&crego_url, "https://admin:hunter2@lms.example.com"));
    assert!(
        e.contains("crego.base_url") && e.contains("credentials") && !e.contains("hunter2"),
        "{e}"
    );
    let started = std::time::Instant::now();
    let e = problems(&base.replace(
        "bearer_token = \"sandbox-crego-token\"",
        "bearer_token_file = \"/dev/zero\"",
    ));
    assert!(
        e.contains("crego.bearer_token_file") && e.contains("/dev/zero") && e.contains("not a secret"),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let e = problems(&format!(
        "{base}{}",
        common::schedules("0 0 0 30 2 *", common::NEVER, common::NEVER, common::NEVER)
    ));
    assert!(
        e.contains("sync.schedules.place_loans") && e.contains("does not fire"),
        "{e}"
    );
}

/// Regression: `Retry-After` had no cap; a partner answering `Retry-After: 3600` held the run for
/// an hour. It is honoured up to `max_retry_after_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_of_an_hour_is_capped() {
    let mut h = Harness::new(6, 50).await;
    h.edit("max_in_flight", "8\nmax_retry_after_secs = 1");
    h.sb.fail_next_on(Api::Crego, Some("GET /v1/lms/line-details/"), 1, 429, Some(3600));
    let started = std::time::Instant::now();
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Regression: the webhook body was buffered before the token was checked (800 token-less partial
/// 1 MiB bodies took the process from 48 to 883 MB), and a half-sent body held its connection
/// open for good. The token is checked from the headers first; a body that does not arrive in time
/// is answered 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_token_is_checked_before_the_body_and_a_trickling_body_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::new(2, 50).await;
    let url = h.listen().await;
    let addr = url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let send_head = |token: Option<&str>| {
        let addr = addr.clone();
        let token = token.map(str::to_string);
        async move {
            let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let auth = token.map(|t| format!("X-Webhook-Token: {t}\r\n")).unwrap_or_default();
            let head = format!(
                "POST /webhooks/credgenics HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{\"event\":"
            );
            conn.write_all(head.as_bytes()).await.unwrap();
            conn
        }
    };
    let read_status = |mut conn: tokio::net::TcpStream| async move {
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(std::time::Duration::from_secs(15), conn.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    // Without the token: refused at once, the body never waited for.
    let started = std::time::Instant::now();
    let status = read_status(send_head(None).await).await;
    assert!(status.contains("401"), "{status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // With it, but the body stops coming: 408 after the body timeout, not a connection held open.
    let status = read_status(send_head(Some(common::WEBHOOK_TOKEN)).await).await;
    assert!(status.contains("408"), "{status}");
}

/// Regression (finding 8): masking went by field name, so a PAN or an Aadhaar number in `tags`,
/// in a name, or quoted back in a rejection reached the logs and `dead-letters list` unmasked.
/// Masking now goes by value as well: neither appears in debug logs or in either listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pans_and_aadhaar_numbers_are_masked_by_value_in_logs_and_dead_letters() {
    let mut h = Harness::new(6, 50).await;
    h.edit_append(concat!(
        "[mapping.loan]\n",
        "applicant_contact_number = '\"ABCDE1234F, 234567890123\"'\n",
        "tags = '[\"pan ABCDE1234F\"]'\n",
        "applicant_name = '.lead.name + \" 234567890123\"'\n",
    ));
    let config = h.write_config();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::binary())
            .args(["--config", config.to_str().unwrap()])
            .args(args)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let logs = run(&["--once"]);
    let list = run(&["dead-letters", "list"]);
    let json = run(&["dead-letters", "list", "--json"]);
    assert!(list.contains("Invalid Mobile numbers"), "the reason is kept: {list}");
    for (what, text) in [("logs", &logs), ("list", &list), ("list --json", &json)] {
        assert!(!text.contains("ABCDE1234F"), "PAN in {what}: {text}");
        assert!(!text.contains("234567890123"), "Aadhaar in {what}: {text}");
    }
}

/// Regression (finding 2): `def f: f; f` and `last(range(1e12))` passed `check-config`, then froze
/// the daemon. `check-config` now runs every expression on built-in samples under the budget and
/// refuses those that never finish, naming each; one that overflows the evaluator's stack (which
/// would abort any process) is caught in a child process and named too.
#[test]
fn check_config_refuses_mappings_that_never_end_or_crash_naming_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let write = |mapping: &str| {
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[crego]\nbase_url = \"https://crego.example\"\nbearer_token = \"a\"\n\
                 [credgenics]\nbase_url = \"https://cg.example/recovery\"\nauth_token = \"b\"\n\
                 [mapping]\nbudget_ms = 200\n{mapping}"
            ),
        )
        .unwrap();
        path
    };
    let check = |path: &std::path::Path| {
        let out = std::process::Command::new(common::binary())
            .args(["--config", path.to_str().unwrap(), "check-config", "--once"])
            .env("CCSYNC_STATE__PATH", path.with_extension("db"))
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = check(&write(
        "[mapping.loan]\ntags = 'def f: f; f'\nloan_type = 'last(range(1e12))'\n",
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("mapping.loan.tags: expression `def f: f; f` did not finish"),
        "{err}"
    );
    assert!(
        err.contains("mapping.loan.loan_type: expression `last(range(1e12))` did not finish"),
        "{err}"
    );
    let (code, err) = check(&write("[mapping.payment]\nnotes = 'def g: 1 + g; g'\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("mapping.payment.notes: expression `def g: 1 + g; g` crashed the evaluator"),
        "{err}"
    );
    let (code, err) = check(&write(""));
    assert_eq!(code, Some(0), "the built-in mapping passes: {err}");
}
