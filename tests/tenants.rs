//! Tenant shapes the documents leave open (issue 13), each exercised against the sandbox set up
//! that way and the daemon configured for it: link fields and list-filter names, the Credgenics
//! token's lifetime as stated, the company rule, the payment rules of the older document (only
//! `Closed` / `Partially Recovered`, `date_of_default`, integer amounts), and "not found"
//! answered as a 400. Each test also shows the default config failing on that tenant in the way
//! an operator would see, so the switch is what makes it work.

mod common;
use common::ExitCode;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, overdue_loan_ids, writes};
use crego_credgenics_sync::clock::Clock;
use crego_credgenics_sync::config::{Config, RawConfig};
use crego_credgenics_sync::flows::RunOptions;
use crego_credgenics_sync::partners::credgenics::CredgenicsClient;
use crego_credgenics_sync::partners::http::Api;
use crego_credgenics_sync::sandbox::{SandboxConfig, SeedSpec, Tenant, TenantFilters, TokenLifetime};
use crego_credgenics_sync::store::{Direction, LedgerRow, LedgerState, LoanState};
use rust_decimal::Decimal;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

async fn tenant(tenant: Tenant) -> Harness {
    Harness::with(SandboxConfig {
        seed: SeedSpec {
            leads: 12,
            overdue_pct: 50,
            rng_seed: 5,
            ..SeedSpec::default()
        },
        tenant,
        ..SandboxConfig::default()
    })
    .await
}

fn config_of(toml: &str) -> Arc<Config> {
    Arc::new(RawConfig::from_toml_str(toml).unwrap().validate().unwrap())
}

async fn run(h: &Harness, config: Arc<Config>) -> crego_credgenics_sync::flows::RunReport {
    let clock = Clock::system(config.sync.timezone.clone());
    h.run(config, clock, RunOptions::default()).await
}

/// `toml` with `extra` lines added to its `[credgenics]` table (the one before `[webhook]`).
fn credgenics_keys(toml: &str, extra: &str) -> String {
    assert!(toml.contains("\n\n[webhook]"));
    toml.replacen("\n\n[webhook]", &format!("\n{extra}\n\n[webhook]"), 1)
}

/// A payment row of `loan_id` (flow C).
fn payment_rows(h: &Harness, loan_id: &str) -> Vec<LedgerRow> {
    h.store().ledger_for_loan(Direction::ToCredgenics, loan_id).unwrap()
}

/// The harness's config with Credgenics client credentials instead of the static token.
fn client_credentials(h: &Harness, extra: &str) -> String {
    let toml = h.config_toml().replace(
        "auth_token = \"sandbox-credgenics-token\"",
        &format!("client_id = \"sandbox-client\"\nclient_secret = \"sandbox-secret\"\n{extra}"),
    );
    assert!(!toml.contains("sandbox-credgenics-token"));
    toml
}

const EXPANDED_LINKS: &str = r#"
[mapping.link]
line_lead_id = ".lead.id"
line_borrower_program_id = ".borrower_program.id"
record_borrower_program_id = ".account.id"
"#;

/// A tenant that lists foreign keys expanded (`lead: {id}`, `account: {id}`) and names its
/// filters otherwise: with the link expressions and filter names configured, every overdue line
/// is placed, an LMS repayment reaches Credgenics, an agent collection reaches the LMS, and an
/// in-doubt record is found by its utr through the renamed filter and the record link — written
/// once. With the defaults, the lines cannot be linked and nothing is placed.
#[tokio::test]
async fn expanded_links_and_renamed_filters_work_once_configured() {
    let mut h = tenant(Tenant {
        expanded_links: true,
        filters: TenantFilters {
            updated_since: "modified_after".into(),
            record_type: "record_type".into(),
            utr: "reference".into(),
        },
        ..Tenant::default()
    })
    .await;

    // The defaults on this tenant: the filter is ignored (the whole list is read each time), and
    // no line names `lead_id`, so none is placed and each is counted as unreadable.
    let report = h.once().await;
    assert_eq!(report.place_loans.placed, 0, "{report:?}");
    assert!(report.place_loans.skipped > 0, "{report:?}");
    assert!(writes(&h.sb.requests()).is_empty());
    h.close_store();
    std::fs::remove_file(&h.state).unwrap();

    let before = h.sb.requests().len();
    h.edit_append(EXPANDED_LINKS);
    h.edit_append(
        "\n[crego.filters]\nupdated_since = \"modified_after\"\nrecord_type = \"record_type\"\nutr = \"reference\"\n",
    );
    let report = h.once().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let overdue = overdue_loan_ids(&h.sb);
    assert!(!overdue.is_empty());
    assert_eq!(report.place_loans.placed as usize, overdue.len(), "{report:?}");
    assert!(
        h.requests_since(before)
            .iter()
            .filter(|r| r.api == "crego" && r.method == "GET" && r.path.ends_with("/line-details/"))
            .all(|r| r.query.contains_key("modified_after") && !r.query.contains_key("updated_at__gte")),
        "the stream filter goes by the tenant's name"
    );
    let record_lists: Vec<_> = h
        .requests_since(before)
        .into_iter()
        .filter(|r| r.api == "crego" && r.method == "GET" && r.path.ends_with("/records/"))
        .collect();
    assert!(!record_lists.is_empty());
    assert!(
        record_lists
            .iter()
            .all(|r| r.query.get("record_type").map(String::as_str) == Some("repayment")
                && !r.query.contains_key("type")),
        "the record type filter goes by the tenant's name"
    );

    // An LMS repayment (listed with `account: {id}`) reaches Credgenics.
    let store = h.store();
    let loan = store.loan(&overdue[0]).unwrap().unwrap();
    h.sb.repayment(&loan.borrower_program_id, dec("250"), "UTR-EXP-1");
    // An agent collection on another loan; its record's answer is lost, so it is in doubt.
    h.sb.lose_answer_of_next(Api::Crego, Some("POST /v1/lms/records/"), 1, 502);
    let other = &overdue[1];
    h.sb.silent_agent_collection(other, dec("300"), "AGENT-EXP-1").unwrap();
    let report = h.once_polling_all().await;
    assert_eq!(report.push_repayments.delivery.sent, 1, "{report:?}");
    let history = h.sb.state().cg_loans[&overdue[0]].payment_history.clone();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["payment_reference_number"], "UTR-EXP-1");

    // The next cycle looks the in-doubt record up by `reference=` and finds it on the loan's
    // account through `.account.id`: no second record.
    let report = h.once_polling_all().await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let written: Vec<_> =
        h.sb.state()
            .records
            .values()
            .filter(|r| r["utr"] == "AGENT-EXP-1")
            .cloned()
            .collect();
    assert_eq!(written.len(), 1, "one record, however the answer was lost");
    assert!(
        h.sb.requests().iter().any(|r| r.api == "crego"
            && r.method == "GET"
            && r.query.get("reference").map(String::as_str) == Some("AGENT-EXP-1")),
        "the utr look-up goes by the tenant's filter name"
    );
    let rows = h.store().ledger_for_loan(Direction::ToCrego, other).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, LedgerState::Done, "{rows:?}");
}

/// Each way a Credgenics token answer may state its lifetime is read, so the token is renewed
/// before it expires — never found expired by a 401 — and an unstated one lasts the documented
/// 900 s (one exchange).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_lifetime_shape_renews_before_expiry() {
    for shape in [
        TokenLifetime::Expiry,
        TokenLifetime::ExpiresIn,
        TokenLifetime::JwtExp,
        TokenLifetime::Unstated,
    ] {
        let h = Harness::with(SandboxConfig {
            token_ttl_secs: 2.0,
            tenant: Tenant {
                token_lifetime: shape,
                ..Tenant::default()
            },
            ..SandboxConfig::default()
        })
        .await;
        let config = config_of(&client_credentials(&h, ""));
        let cg = CredgenicsClient::new(&config.credgenics).unwrap();
        for _ in 0..3 {
            assert!(cg.get_loan("CL000000", None).await.unwrap().is_none(), "{shape:?}");
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        let refused = h.sb.requests().iter().filter(|r| r.status == 401).count();
        assert_eq!(refused, 0, "{shape:?}: a token was used past its stated lifetime");
        let exchanges = h.sb.token_exchanges(Api::Credgenics);
        if shape == TokenLifetime::Unstated {
            assert_eq!(exchanges, 1, "unstated: the documented 900 s");
        } else {
            assert!(
                exchanges >= 2,
                "{shape:?}: {exchanges} exchanges in 3.6 s of 2 s tokens"
            );
        }
    }
}

/// `company_id` with exchanged credentials: taken from the answer when the credentials belong
/// to one company (and then sent on every call, which this tenant requires); with several, the
/// run stops naming `credgenics.company_id` and writes nothing; configured, it is used.
#[tokio::test]
async fn the_company_is_learned_when_there_is_one_and_must_be_configured_when_there_are_several() {
    let h = tenant(Tenant {
        companies: vec!["lender-a".into()],
        ..Tenant::default()
    })
    .await;
    let report = run(&h, config_of(&client_credentials(&h, ""))).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let cg: Vec<_> =
        h.sb.requests()
            .into_iter()
            .filter(|r| r.api == "credgenics" && !r.path.ends_with("access-token"))
            .collect();
    assert!(!cg.is_empty());
    assert!(
        cg.iter()
            .all(|r| r.query.get("company_id").map(String::as_str) == Some("lender-a"))
    );

    let h = tenant(Tenant {
        companies: vec!["lender-a".into(), "lender-b".into()],
        ..Tenant::default()
    })
    .await;
    let report = run(&h, config_of(&client_credentials(&h, ""))).await;
    assert_eq!(report.exit_code(), 3, "{report:?}");
    let error = report.error.clone().unwrap_or_default();
    assert!(
        error.contains("credgenics.company_id") && error.contains("lender-a, lender-b"),
        "{error}"
    );
    assert!(
        writes(&h.sb.requests())
            .iter()
            .all(|r| r.path.ends_with("/access-token")),
        "only the token exchange"
    );
    h.close_store();

    let report = run(&h, config_of(&client_credentials(&h, "company_id = \"lender-b\""))).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert!(
        writes(&h.sb.requests())
            .iter()
            .filter(|r| !r.path.ends_with("/access-token"))
            .all(|r| r.query.get("company_id").map(String::as_str) == Some("lender-b"))
    );
}

/// The older document's payment rules: with `payment_amount_decimals = 0`, a repayment with
/// paise goes as whole rupees and every `Partially Recovered` carries the allocation's
/// `date_of_default`, and the strict tenant takes them; with the default two decimals it refuses
/// the paise (a dead letter, not a retry). A `final_status` outside the documented two is refused
/// before sending unless `extra_final_statuses` names it.
#[tokio::test]
async fn strict_payment_rules_integer_amounts_and_final_status_options() {
    let h = tenant(Tenant {
        strict_payments: true,
        ..Tenant::default()
    })
    .await;
    let toml = credgenics_keys(&h.config_toml(), "payment_amount_decimals = 0");
    let integer = config_of(&toml);
    let report = run(&h, integer.clone()).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let loans = overdue_loan_ids(&h.sb);
    let store = h.store();
    let a = store.loan(&loans[0]).unwrap().unwrap();
    let b = store.loan(&loans[1]).unwrap().unwrap();
    let c = store.loan(&loans[2]).unwrap().unwrap();
    h.sb.repayment(&a.borrower_program_id, dec("100.50"), "UTR-INT-1");
    let report = run(&h, integer.clone()).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    let p = h.sb.state().cg_loans[&loans[0]].payment_history[0].clone();
    assert_eq!(p["amount_recovered"].to_string(), "101", "half-up to whole rupees");
    assert_eq!(p["final_status"], "Partially Recovered");
    let sent =
        h.sb.requests()
            .into_iter()
            .find(|r| r.method == "PATCH" && r.path.contains("/payments/"))
            .unwrap();
    let claim = &a.payload.as_ref().unwrap()["defaults"][0];
    assert!(claim["date_of_default"].is_string(), "{claim}");
    assert_eq!(
        sent.body.as_ref().unwrap()["date_of_default"],
        claim["date_of_default"],
        "the allocation's date_of_default, as uploaded"
    );

    // Default decimals on the strict tenant: refused, a dead letter naming the field.
    h.sb.repayment(&b.borrower_program_id, dec("75.25"), "UTR-INT-2");
    let report = run(&h, config_of(&h.config_toml())).await;
    assert_eq!(report.exit_code(), 1, "{report:?}");
    let dead = payment_rows(&h, &loans[1]);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].state, LedgerState::Dead);
    assert!(
        format!("{:?}", dead[0].dead_reason).contains("amount_recovered"),
        "{dead:?}"
    );

    // A mapping that says `Settled`: refused before any request, unless widened by config.
    h.sb.repayment(&c.borrower_program_id, dec("10"), "UTR-SET-1");
    let settled = format!("{toml}\n[mapping.payment]\nfinal_status = '\"Settled\"'\n");
    let before = h.sb.requests().len();
    let report = run(&h, config_of(&settled)).await;
    assert_eq!(report.exit_code(), 1, "{report:?}");
    assert!(
        h.requests_since(before)
            .iter()
            .all(|r| !(r.method == "PATCH" && r.path.contains(&loans[2]))),
        "preflight refused it"
    );
    let row = payment_rows(&h, &loans[2]).remove(0);
    assert_eq!(row.state, LedgerState::Dead);
    assert!(format!("{:?}", row.dead_reason).contains("final_status"), "{row:?}");

    // Widened, the payload passes preflight and is sent; this strict tenant refuses it itself.
    let widened = credgenics_keys(&settled, "extra_final_statuses = [\"Settled\"]");
    assert!(h.live_store().retry_dead(row.id, 0.0).unwrap());
    let before = h.sb.requests().len();
    let report = run(&h, config_of(&widened)).await;
    assert_eq!(report.exit_code(), 1, "{report:?}");
    let refused: Vec<_> = h
        .requests_since(before)
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.contains(&loans[2]))
        .collect();
    assert_eq!(refused.len(), 1, "sent once widened");
    assert_eq!(refused[0].status, 400);
    assert_eq!(refused[0].body.as_ref().unwrap()["final_status"], "Settled");
}

/// A tenant that answers 400 "Loan not found" for a loan it does not have: an upload whose
/// answer was a 5xx (outcome unknown) stays in doubt while only 404 means absent, and resolves
/// (looked up, found absent, uploaded once) once `absent_statuses` and `absent_message` say so.
#[tokio::test]
async fn a_400_not_found_resolves_in_doubt_uploads_once_configured() {
    let h = tenant(Tenant {
        unknown_is_400: true,
        ..Tenant::default()
    })
    .await;
    let overdue = overdue_loan_ids(&h.sb);
    h.sb.fail_next_on(Api::Credgenics, Some("POST /recovery/loan/"), 1, 500, None);
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1, "{report:?}");
    let in_doubt: Vec<String> = overdue
        .iter()
        .filter(|id| h.store().loan(id).unwrap().unwrap().state == LoanState::Uploading)
        .cloned()
        .collect();
    assert_eq!(in_doubt.len(), 1, "one upload's outcome unknown");

    // Only 404 means absent: the look-up's 400 settles nothing.
    let report = h.once().await;
    assert_eq!(report.exit_code(), 1, "{report:?}");
    assert_eq!(
        h.store().loan(&in_doubt[0]).unwrap().unwrap().state,
        LoanState::Uploading
    );

    let toml = credgenics_keys(
        &h.config_toml(),
        "absent_statuses = [400, 404]\nabsent_message = \"loan not found\"",
    );
    let report = run(&h, config_of(&toml)).await;
    assert_eq!(report.exit_code(), 0, "{report:?}");
    assert_eq!(h.store().loan(&in_doubt[0]).unwrap().unwrap().state, LoanState::Placed);
    assert_eq!(
        h.sb.state().cg_loans[&in_doubt[0]]
            .uploads_per_month
            .values()
            .sum::<u32>(),
        1,
        "uploaded once"
    );
}

/// The same tenant shape on the Crego side: a lead that is gone answers 400. With the default
/// (only 404 is absent) the line fails and is tried again each run; once
/// `crego.absent_statuses` says so, it is the line's dead letter, named, and the rest sync.
#[tokio::test]
async fn a_crego_lead_gone_as_400_is_a_dead_letter_once_configured() {
    let h = tenant(Tenant {
        unknown_is_400: true,
        ..Tenant::default()
    })
    .await;
    let overdue = common::overdue_lines(&h.sb);
    let gone_bp = overdue[0].1.clone();
    let lead = h.sb.state().find_program(&gone_bp).unwrap().0;
    h.sb.state().leads.remove(&lead);

    let report = h.once().await;
    assert_eq!(report.place_loans.failed, 1, "{report:?}");
    assert_eq!(report.place_loans.dead_letters, 0, "{report:?}");
    assert_eq!(report.place_loans.placed as usize, overdue.len() - 1);

    let toml = h.config_toml().replacen(
        "\n\n[credgenics]",
        "\nabsent_statuses = [400, 404]\nabsent_message = \"does not exist\"\n\n[credgenics]",
        1,
    );
    let report = run(&h, config_of(&toml)).await;
    assert_eq!(report.place_loans.failed, 0, "{report:?}");
    assert_eq!(report.place_loans.dead_letters, 1, "{report:?}");
    let letters = h.store().line_dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].borrower_program_id, gone_bp);
    assert!(letters[0].reason.contains("not found"), "{letters:?}");
}
