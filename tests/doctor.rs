//! `doctor` (issue 13) as an operator runs it, against the sandbox: a healthy tenant passes
//! (exit 0); a wrong token, a wrong path, link fields missing and an unwritable state folder are
//! each named with their fix (non-zero exit); and it never writes to either partner.

mod common;

use std::str::FromStr;

use common::{Harness, binary, overdue_lines};
use crego_credgenics_sync::sandbox::{SandboxConfig, SeedSpec, Tenant};
use rust_decimal::Decimal;

async fn doctor(h: &Harness, toml: &str) -> (i32, String) {
    let path = h.dir.path().join("doctor.toml");
    std::fs::write(&path, toml).unwrap();
    let out = tokio::process::Command::new(binary())
        .args(["--config", path.to_str().unwrap(), "doctor"])
        .env_remove("CCSYNC_NOW")
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// The line of check `name`.
fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no line for {name} in:\n{text}"))
}

fn with_public_url(toml: &str) -> String {
    toml.replacen(
        "\n[webhook]\n",
        "\n[webhook]\npublic_url = \"https://sync.lender.example\"\n",
        1,
    )
}

/// The only requests doctor may make: reads, and token exchanges.
fn assert_read_only(h: &Harness, from: usize) {
    let reqs = h.requests_since(from);
    assert!(!reqs.is_empty(), "doctor read nothing");
    let writes: Vec<_> = reqs
        .iter()
        .filter(|r| r.is_write() && !r.path.ends_with("/access-token") && !r.path.contains("/auth/token/"))
        .collect();
    assert!(writes.is_empty(), "doctor wrote: {writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_tenant_passes_every_check_reading_only() {
    let h = Harness::new(10, 50).await;
    let report = h.once().await;
    assert!(report.place_loans.placed > 0);
    let (_, bp, _) = overdue_lines(&h.sb).remove(0);
    h.sb.repayment(&bp, Decimal::from_str("10").unwrap(), "UTR-DOC-1");
    h.close_store();

    let before = h.sb.requests().len();
    let (code, text) = doctor(&h, &with_public_url(&h.config_toml())).await;
    assert_eq!(code, 0, "{text}");
    for name in [
        "state",
        "time zone",
        "crego",
        "line links",
        "record link",
        "credgenics",
        "loan path",
        "mapping",
        "webhook",
        "listener",
    ] {
        assert!(line(&text, name).starts_with('✓'), "{name}:\n{text}");
    }
    assert!(
        text.contains("Credgenics must POST to https://sync.lender.example/webhooks/credgenics"),
        "{text}"
    );
    assert!(text.contains("passes preflight"), "{text}");
    assert!(
        text.contains("\"applicant_contact_number\": \"******"),
        "payload shown masked:\n{text}"
    );
    assert_read_only(&h, before);
}

/// Each fault of a broken go-live config is named on its own line with its fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_tenant_names_each_failure_and_exits_non_zero() {
    // Links expanded on read, which the default [mapping.link] does not read.
    let h = Harness::with(SandboxConfig {
        seed: SeedSpec {
            leads: 10,
            overdue_pct: 50,
            ..SeedSpec::default()
        },
        tenant: Tenant {
            expanded_links: true,
            ..Tenant::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let not_a_dir = h.dir.path().join("not-a-folder");
    std::fs::write(&not_a_dir, "").unwrap();
    let toml = h
        .config_toml()
        .replace(
            &format!("path = \"{}\"", h.state.display()),
            &format!("path = \"{}\"", not_a_dir.join("state.db").display()),
        )
        .replace("sandbox-credgenics-token", "wrong-token")
        .replacen(
            "page_size = 100",
            "page_size = 100\nrecords_path = \"/v1/lms/record/\"",
            1,
        );
    let before = h.sb.requests().len();
    let (code, text) = doctor(&h, &with_public_url(&toml)).await;
    assert_eq!(code, 1, "{text}");
    let state = line(&text, "state");
    assert!(state.starts_with('✗') && state.contains("not-a-folder"), "{text}");
    assert!(line(&text, "crego").starts_with('✓'), "{text}");
    let links = line(&text, "line links");
    assert!(
        links.starts_with('✗') && links.contains("mapping.link.line_lead_id"),
        "{text}"
    );
    assert!(
        text.contains("this item's keys:"),
        "the fix lists the item's keys:\n{text}"
    );
    let records = line(&text, "record link");
    assert!(records.starts_with('✗') && records.contains("404"), "{text}");
    assert!(text.contains("crego.records_path"), "{text}");
    let cg = line(&text, "credgenics");
    assert!(cg.starts_with('✗') && cg.contains("refused the credential"), "{text}");
    assert!(text.contains("credgenics.auth_token"), "{text}");
    assert!(line(&text, "mapping").starts_with('✗'), "{text}");
    assert!(text.contains("failed"), "{text}");
    assert_read_only(&h, before);
}

/// A wrong Credgenics path answers 404 for every loan, which reads as "absent" for the probe;
/// a placed loan read back shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_credgenics_path_is_caught_by_reading_a_placed_loan_back() {
    let h = Harness::new(10, 50).await;
    assert!(h.once().await.place_loans.placed > 0);
    h.close_store();
    let toml = h
        .config_toml()
        .replacen("\n\n[webhook]", "\nloan_path = \"/v9/loan/{loan_id}\"\n\n[webhook]", 1);
    let before = h.sb.requests().len();
    let (code, text) = doctor(&h, &toml).await;
    assert_eq!(code, 1, "{text}");
    let path = line(&text, "loan path");
    assert!(path.starts_with('✗') && path.contains("reads as absent"), "{text}");
    assert!(text.contains("credgenics.loan_path"), "{text}");
    assert_read_only(&h, before);
}
