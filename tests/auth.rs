//! Authentication as the partners issue it: credentials exchanged for expiring tokens, renewed
//! before expiry and once after a 401 — exactly once per expiry, under concurrent requests.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Harness;
use crego_credgenics_sync::config::{Config, RawConfig};
use crego_credgenics_sync::credgenics::CredgenicsClient;
use crego_credgenics_sync::crego::CregoClient;
use crego_credgenics_sync::http::Api;
use crego_credgenics_sync::sandbox::SandboxConfig;

fn exchanged(h: &Harness, secret: &str) -> Arc<Config> {
    let toml = h
        .config_toml()
        .replace(
            "bearer_token = \"sandbox-crego-token\"",
            "username = \"sandbox-user\"\npassword = \"sandbox-password\"",
        )
        .replace(
            "auth_token = \"sandbox-credgenics-token\"",
            &format!("client_id = \"sandbox-client\"\nclient_secret = \"{secret}\"\ncompany_id = \"lender-7\""),
        );
    assert!(!toml.contains("sandbox-crego-token") && !toml.contains("sandbox-credgenics-token"));
    Arc::new(RawConfig::from_toml_str(&toml).unwrap().validate().unwrap())
}

async fn harness(ttl: f64) -> Harness {
    Harness::with(SandboxConfig {
        token_ttl_secs: ttl,
        ..SandboxConfig::default()
    })
    .await
}

fn unauthorized(h: &Harness, api: &str) -> usize {
    h.sb.requests()
        .iter()
        .filter(|r| r.api == api && r.status == 401)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_exchanged_once_and_renewed_before_expiry_under_concurrency() {
    let h = harness(2.0).await;
    let config = exchanged(&h, "sandbox-secret");
    let crego = Arc::new(CregoClient::new(&config.crego).unwrap());
    let cg = Arc::new(CredgenicsClient::new(&config.credgenics).unwrap());
    let lead = h.sb.state().leads.keys().next().unwrap().clone();
    let burst = || {
        let (crego, cg, lead) = (crego.clone(), cg.clone(), lead.clone());
        async move {
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let (crego, cg, lead) = (crego.clone(), cg.clone(), lead.clone());
                tasks.push(tokio::spawn(async move {
                    crego.lead(&lead).await.unwrap();
                    assert!(cg.get_loan("CL000000", None).await.unwrap().is_none());
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    burst().await;
    assert_eq!(
        (h.sb.token_exchanges(Api::Crego), h.sb.token_exchanges(Api::Credgenics)),
        (1, 1)
    );
    // Past four fifths of the lifetime, before expiry: renewed once, with no request refused.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    burst().await;
    assert_eq!(
        (h.sb.token_exchanges(Api::Crego), h.sb.token_exchanges(Api::Credgenics)),
        (2, 2)
    );
    assert_eq!(unauthorized(&h, "crego") + unauthorized(&h, "credgenics"), 0);
    // The optional company_id goes on every Credgenics call.
    assert!(
        h.sb.requests()
            .iter()
            .filter(|r| r.path.starts_with("/recovery/loan/"))
            .all(|r| r.query["company_id"] == "lender-7")
    );
    assert_eq!((crego.http().tokens_issued(), cg.http().tokens_issued()), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_renews_the_token_exactly_once_for_all_concurrent_requests() {
    let h = harness(3600.0).await;
    let config = exchanged(&h, "sandbox-secret");
    let crego = Arc::new(CregoClient::new(&config.crego).unwrap());
    let cg = Arc::new(CredgenicsClient::new(&config.credgenics).unwrap());
    let lead = h.sb.state().leads.keys().next().unwrap().clone();
    crego.lead(&lead).await.unwrap();
    cg.get_loan("X", None).await.unwrap();
    h.sb.revoke_tokens();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (crego, cg, lead) = (crego.clone(), cg.clone(), lead.clone());
        tasks.push(tokio::spawn(async move {
            crego.lead(&lead).await.unwrap();
            cg.get_loan("X", None).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        unauthorized(&h, "crego") >= 1 && unauthorized(&h, "credgenics") >= 1,
        "the revoked tokens were refused"
    );
    assert_eq!(
        (h.sb.token_exchanges(Api::Crego), h.sb.token_exchanges(Api::Credgenics)),
        (2, 2),
        "one renewal each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cycle_runs_on_exchanged_credentials_and_wrong_ones_stop_it_clearly() {
    let h = harness(3600.0).await;
    let clock = || crego_credgenics_sync::clock::Clock::system(jiff::tz::TimeZone::get("Asia/Kolkata").unwrap());
    let report = h
        .run(exchanged(&h, "sandbox-secret"), clock(), Default::default())
        .await;
    assert_eq!(report.exit_code, 0, "{report:?}");
    assert!(!h.sb.state().cg_loans.is_empty());
    h.close_store();

    let h = harness(3600.0).await;
    let report = h.run(exchanged(&h, "wrong-secret"), clock(), Default::default()).await;
    assert_eq!(report.exit_code, 3, "a refused credential: the run could not complete");
    let err = report.error.unwrap();
    assert!(
        err.contains("credgenics refused the credential") && err.contains("client_secret"),
        "{err}"
    );
}
