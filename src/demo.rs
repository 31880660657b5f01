//! `demo`: the whole product on a newcomer's machine with no credentials. Starts the sandbox and
//! the webhook listener in-process on free ports with a temporary state, and runs the three flows
//! through a small story: placement, then LMS repayments and agent collections, then a quiet
//! cycle; it ends by comparing both sides (counts and money totals).

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;

use crate::app::report::{AppError, Report};
use crate::clock::{self, Clock};
use crate::config::{self, LogFormat};
use crate::flows::{self, Context, Poll, RunOptions, RunOutcome, RunReport};
use crate::money;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::server::{self, ServerState};
use crate::store::Store;
use crate::telemetry;

const WEBHOOK_TOKEN: &str = "demo-webhook-token";

pub async fn run() -> Result<Report, AppError> {
    telemetry::init_logging("warn", LogFormat::Human);
    story().await.map_err(|e| {
        eprintln!("demo failed: {e}");
        AppError::Failed(String::new())
    })
}

async fn story() -> Result<Report, String> {
    let sb = Sandbox::start_local(SandboxConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("ccsync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let state_path = dir.join("state.db");
    let config = config::RawConfig::from_toml_str(&sb.config_toml(&state_path))
        .and_then(|r| r.validate())
        .map_err(|e| e.to_string())?;
    let config = Arc::new(config);
    let clock = Clock::system(config.sync.timezone.clone());
    let store = Arc::new(Store::open(&state_path).map_err(|e| e.to_string())?);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let hook_url = format!(
        "http://{}{}",
        listener.local_addr().map_err(|e| e.to_string())?,
        server::WEBHOOK_PATH
    );
    let state = ServerState {
        config: config.clone(),
        store: store.clone(),
        clock: clock.clone(),
        token: WEBHOOK_TOKEN.to_string().into(),
    };
    tokio::spawn(server::serve(listener, state, std::future::pending()));
    sb.set_webhook_target(&hook_url, WEBHOOK_TOKEN);

    println!("crego-credgenics-sync demo");
    println!("  sandbox Crego      {}", sb.crego_url());
    println!("  sandbox Credgenics {}", sb.credgenics_url());
    println!("  webhook listener   {hook_url}");
    println!("  state              {}", state_path.display());
    println!(
        "  today (IST)        {}, allocation month {}",
        clock.today(),
        clock::allocation_month(clock.today())
    );

    // A fresh context per cycle, so each summary counts its own requests.
    let cycle = |opts: RunOptions| {
        let ctx = Context::new(config.clone(), store.clone(), clock.clone());
        async move {
            match ctx {
                Ok(ctx) => Ok(flows::run_once(&ctx, &opts).await),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let all = RunOptions {
        since: None,
        poll: Some(Poll::All),
    };

    let first = cycle(all.clone()).await?;
    print_summary("cycle 1: overdue loans → Credgenics", &first);

    // Life goes on: repayments booked in the LMS, recoveries made by Credgenics agents.
    let placed: Vec<(String, String, Decimal)> = store
        .loans_in_state(crate::store::LoanState::Placed)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|l| (l.loan_id, l.borrower_program_id, l.due_amount.unwrap_or_default()))
        .collect();
    if placed.len() < 4 {
        return Err(format!("the sandbox placed only {} loans", placed.len()));
    }
    sb.repayment(&placed[0].1, placed[0].2, "DEMO-UTR-0001");
    sb.repayment(&placed[1].1, Decimal::new(150_050, 2), "DEMO-UTR-0002");
    sb.agent_collection(&placed[2].0, Decimal::new(2_000, 0), "CG-AGENT-0001")
        .await;
    sb.agent_collection(&placed[3].0, Decimal::new(75_025, 2), "").await;
    println!(
        "\nmeanwhile: 2 repayments booked in the LMS ({} and {}), 2 agent collections at Credgenics (webhooks sent)",
        placed[0].0, placed[1].0
    );

    let second = cycle(all).await?;
    print_summary("cycle 2: repayments → Credgenics, recoveries → LMS", &second);

    // The records written in cycle 2 lowered those lines' dues in the LMS: the claims follow.
    let third = cycle(RunOptions::default()).await?;
    print_summary("cycle 3: the LMS's own changes (lower dues) → claims updated", &third);

    let before = sb.requests().len();
    let fourth = cycle(RunOptions::default()).await?;
    let quiet = sb.requests()[before..].to_vec();
    let quiet_writes = quiet.iter().filter(|r| r.is_write()).count();
    println!(
        "\ncycle 4 (nothing changed): {} request(s) ({}), {} write(s)",
        quiet.len(),
        quiet.iter().map(|r| r.path.as_str()).collect::<Vec<_>>().join(", "),
        quiet_writes
    );

    let (agree, line) = compare_sides(&sb, &store);
    println!("\n{line}");
    let _ = std::fs::remove_dir_all(&dir);
    let ok = [&first, &second, &third, &fourth]
        .iter()
        .all(|r| r.outcome == RunOutcome::Clear)
        && first.place_loans.rejected == 0
        && quiet_writes == 0
        && agree;
    println!(
        "\n{}",
        if ok {
            "demo OK"
        } else {
            "demo found a problem (see above)"
        }
    );
    Ok(Report::clear_if(ok))
}

pub(crate) fn print_summary(title: &str, r: &RunReport) {
    print!("\n{}", crate::app::summary::render(title, r));
}

/// Both sides hold the same payments for the placed loans: Credgenics' payment histories and the
/// LMS repayment records dated after placement, matched by (loan, reference, amount).
fn compare_sides(sb: &Sandbox, store: &Store) -> (bool, String) {
    let s = sb.state();
    let mut credgenics: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for (loan_id, loan) in &s.cg_loans {
        for p in &loan.payment_history {
            let reference = p["payment_reference_number"].as_str().unwrap_or_default().to_string();
            *credgenics.entry((loan_id.clone(), reference)).or_default() +=
                money::from_json(&p["amount_recovered"]).unwrap_or_default();
        }
    }
    let mut lms: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for r in s.records.values().filter(|r| r["type"] == "repayment") {
        let Ok(Some(loan)) = store.loan_by_program(r["account"].as_str().unwrap_or_default()) else {
            continue;
        };
        let utr = r["utr"].as_str().unwrap_or_default().to_string();
        // Repayments dated before placement were part of the claim; recoveries the daemon wrote
        // (dated to the second) always count.
        let written = store
            .wrote_reference(crate::store::Direction::ToCrego, &loan.loan_id, &utr)
            .unwrap_or(false);
        if !written && r["date"].as_f64().unwrap_or(0.0) < loan.first_placed_at.unwrap_or(f64::MAX) {
            continue;
        }
        *lms.entry((loan.loan_id, utr)).or_default() += money::from_json(&r["amount"]).unwrap_or_default();
    }
    // A recovery with no reference is written to the LMS under a CG- utr: match it by amount.
    let normalise = |m: &BTreeMap<(String, String), Decimal>| -> Vec<(String, Decimal)> {
        let mut v: Vec<(String, Decimal)> = m
            .iter()
            .map(|((loan, _), amount)| (loan.clone(), amount.normalize()))
            .collect();
        v.sort();
        v
    };
    let total = |m: &BTreeMap<(String, String), Decimal>| m.values().copied().sum::<Decimal>();
    let agree = normalise(&credgenics) == normalise(&lms) && total(&credgenics) == total(&lms);
    let line = format!(
        "{}: Credgenics holds {} payment(s) totalling ₹{}; the LMS holds {} repayment(s) totalling ₹{}",
        if agree {
            "both sides agree"
        } else {
            "THE SIDES DISAGREE"
        },
        credgenics.len(),
        total(&credgenics),
        lms.len(),
        total(&lms),
    );
    (agree, line)
}
