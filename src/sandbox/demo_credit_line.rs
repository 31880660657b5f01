//! `demo --credit-line`: credit-line mode (design §8) on a newcomer's machine. One Crego line of
//! three overdue drawdowns becomes one Credgenics customer with three transactions; then an LMS
//! repayment clears one drawdown and part-pays another (two payment shares, the first `Closed`),
//! a collection agent recovers part of the third (written back as an LMS record), and a quiet
//! cycle sends nothing. It ends by comparing both sides.

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::app::report::{AppError, Report};
use crate::clock::{self, Clock};
use crate::config::{self, LogFormat};
use crate::flows::{self, Context, Poll, RunOptions, RunOutcome};
use crate::money;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::store::Store;
use crate::telemetry;

pub async fn run() -> Result<Report, AppError> {
    telemetry::init_logging("warn", LogFormat::Human);
    story().await.map_err(|e| {
        eprintln!("demo failed: {e}");
        AppError::Failed(String::new())
    })
}

async fn story() -> Result<Report, String> {
    let sb = Sandbox::start_local(SandboxConfig::credit_line())
        .await
        .map_err(|e| e.to_string())?;
    let d = |paise: i64| Decimal::new(paise, 2);
    let (_, account, customer, refs) = super::seed::seed_credit_line(
        &mut sb.state(),
        1,
        &[
            ("loan", d(1_000_000), d(400_000), 45, 120.0),
            ("loan", d(800_000), d(300_000), 20, 75.0),
            ("topup", d(500_000), d(250_000), 8, 30.0),
        ],
    );
    let dir = std::env::temp_dir().join(format!("ccsync-demo-cl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let state_path = dir.join("state.db");
    let text = sb.config_toml(&state_path);
    let config = config::RawConfig::from_toml_str(&text)
        .and_then(|r| r.validate())
        .map_err(|e| e.to_string())?;
    let config = Arc::new(config);
    let clock = Clock::system(config.sync.timezone.clone());
    let store = Arc::new(Store::open(&state_path).map_err(|e| e.to_string())?);
    store
        .claim_mode(config.credgenics.mode.as_str())
        .map_err(|e| e.to_string())?
        .ok();

    println!("crego-credgenics-sync demo — credit-line mode");
    println!("  sandbox Crego      {}", sb.crego_url());
    println!("  sandbox Credgenics {} (a credit-line tenant)", sb.credgenics_url());
    println!("  state              {}", state_path.display());
    println!(
        "  today (IST)        {}, allocation month {}",
        clock.today(),
        clock::allocation_month(clock.today())
    );
    println!(
        "  one line ({customer}) with three overdue drawdowns: {}",
        refs.join(", ")
    );

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
    crate::demo::print_summary("cycle 1: overdue drawdowns → transactions of one customer", &first);

    let id_of = |r: &str| {
        sb.drawdown(&account, r)
            .and_then(|v| v["id"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let (a, b) = (id_of(&refs[0]), id_of(&refs[1]));
    sb.line_repayment(&account, d(520_000), "DEMO-CL-UTR-1", &[a.as_str(), b.as_str()], None);
    sb.cl_agent_collection(&customer, &refs[2], d(100_000), "CG-AGENT-CL-1")
        .ok_or("the agent collection found no transaction")?;
    println!(
        "\nmeanwhile: one LMS repayment of ₹5200 naming {} and {} (clears the first, part-pays the second); \
         an agent collects ₹1000 on {}",
        refs[0], refs[1], refs[2]
    );
    let second = cycle(all).await?;
    crate::demo::print_summary("cycle 2: repayment shares → Credgenics, recovery → LMS", &second);

    let before = sb.requests().len();
    let third = cycle(RunOptions::default()).await?;
    let quiet_writes = sb.requests()[before..].iter().filter(|r| r.is_write()).count();
    println!("\ncycle 3 (nothing changed): {quiet_writes} write(s)");

    let (agree, lines) = compare(&sb, &customer, &account);
    for l in &lines {
        println!("{l}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let ok = [&first, &second, &third].iter().all(|r| r.outcome == RunOutcome::Clear)
        && first.place_loans.placed == 3
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

/// The customer's transactions and payments at Credgenics, and the line's repayments in the LMS
/// since placement: the same money on both sides.
fn compare(sb: &Sandbox, customer: &str, account: &str) -> (bool, Vec<String>) {
    let s = sb.state();
    let mut lines = vec![String::new()];
    let Some(c) = s.credit_line.customers.get(customer) else {
        return (false, vec![format!("Credgenics has no customer {customer}")]);
    };
    for (tid, t) in &c.transactions {
        let last = t.defaults.last().cloned().unwrap_or_default();
        lines.push(format!(
            "  transaction {tid}: claim ₹{}, recovered ₹{}, status {}",
            last["total_claim_amount"],
            last.get("amount_recovered").cloned().unwrap_or(serde_json::json!(0)),
            last.get("final_status").and_then(|v| v.as_str()).unwrap_or("Initiated"),
        ));
    }
    let credgenics: Decimal = c
        .payment_history
        .iter()
        .filter_map(|p| money::from_json(&p["amount_recovered"]))
        .sum();
    let lms: Decimal = s
        .records
        .values()
        .filter(|r| r["type"] == "repayment" && r["account"] == account)
        .filter_map(|r| money::from_json(&r["amount"]))
        .sum();
    let agree = credgenics == lms && !c.payment_history.is_empty();
    lines.push(format!(
        "{}: Credgenics holds {} payment(s) on the customer totalling ₹{}; the LMS holds ₹{} of repayments on the line",
        if agree {
            "both sides agree"
        } else {
            "THE SIDES DISAGREE"
        },
        c.payment_history.len(),
        credgenics,
        lms
    ));
    (agree, lines)
}
