//! A state file belongs to one Credgenics mode (design §8): `lending` or `credit_line`. Its
//! loans, ledger and cursors mean different things in each, so a config of the other mode is
//! refused before anything is read or sent, whichever way the switch goes.

mod common;

use common::ExitCode;
use common::{Harness, binary, writes};
use crego_credgenics_sync::store::Store;

fn run(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = std::process::Command::new(binary());
    cmd.args(["--config", config.to_str().unwrap()])
        .args(args)
        .env_remove("CCSYNC_NOW");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_is_refused_under_the_other_mode_either_way() {
    let h = Harness::new(8, 50).await;
    assert_eq!(h.once().await.exit_code(), 0);
    assert_eq!(h.live_store().mode().unwrap().as_deref(), Some("lending"));
    h.close_store();
    let config = h.write_config();
    let before = h.sb.requests().len();

    let credit_line = [("CCSYNC_CREDGENICS__MODE", "credit_line")];
    let (code, err) = run(&config, &["--once"], &credit_line);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("belongs to credgenics.mode = \"lending\"") && err.contains("\"credit_line\""),
        "{err}"
    );
    let (code, err) = run(&config, &["--dry-run"], &credit_line);
    assert_eq!(code, 2, "a dry run is refused too: {err}");

    let (code, err) = run(&config, &["check-config"], &[("CCSYNC_CREDGENICS__MODE", "credt_line")]);
    assert_eq!(code, 2);
    assert!(err.contains("`credt_line` is not a mode"), "{err}");
    assert!(writes(&h.requests_since(before)).is_empty(), "nothing was sent");
    assert!(h.requests_since(before).is_empty(), "nothing was read either");

    // A fresh state under credit_line runs in that mode, and belongs to it from then on.
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    let fresh_env = [
        ("CCSYNC_CREDGENICS__MODE", "credit_line"),
        ("CCSYNC_STATE__PATH", fresh.to_str().unwrap()),
    ];
    let (code, err) = run(&config, &["check-config", "--once"], &fresh_env);
    assert_eq!(code, 0, "a credit-line config checks OK: {err}");
    let (code, err) = run(&config, &["--once"], &fresh_env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        Store::open(&fresh).unwrap().mode().unwrap().as_deref(),
        Some("credit_line")
    );
    let (code, err) = run(&config, &["--once"], &[("CCSYNC_STATE__PATH", fresh.to_str().unwrap())]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("belongs to credgenics.mode = \"credit_line\"") && err.contains("\"lending\""),
        "{err}"
    );

    // The lending config still runs on its state.
    let (code, err) = run(&config, &["--once"], &[]);
    assert_eq!(code, 0, "{err}");
}
