//! What `bench` measures (the phases, the report) and how the report is printed.

use serde::Serialize;

/// Counters of one API over one phase, as the sandbox saw them.
#[derive(Debug, Clone, Serialize)]
pub struct ApiPhase {
    pub requests: u64,
    pub writes: u64,
    pub rate_limited: u64,
    pub per_sec: f64,
}

/// One measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub wall_secs: f64,
    /// User + system CPU time of this process (the daemon) during the phase.
    pub cpu_secs: f64,
    pub crego: ApiPhase,
    pub credgenics: ApiPhase,
    /// Rows the daemon's state changed (SQLite `total_changes`).
    pub state_rows_changed: u64,
    pub loans_placed: u64,
    pub outcome: crate::flows::RunOutcome,
    pub summary: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub leads: usize,
    pub overlap_secs: u64,
    /// The lender-scale cycles, in order.
    pub phases: Vec<(String, Phase)>,
    pub loans_placed_per_sec: Option<f64>,
    pub cpu_us_per_loan_placed: Option<f64>,
    /// Peak resident set of this process (the daemon), MiB: after the first sync, and at the end.
    pub peak_rss_after_first_mib: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub rate_limit: u32,
    pub rate_placement: Option<Phase>,
    pub rate_poll: Option<Phase>,
}

pub(super) fn print_report(r: &Report) {
    let api = |name: &str, a: &ApiPhase| {
        println!(
            "    {name:<11} {:>8} requests ({:>7.1}/s), {:>6} writes, {} answered 429",
            a.requests, a.per_sec, a.writes, a.rate_limited
        )
    };
    for (i, (name, p)) in r.phases.iter().enumerate() {
        println!("{name}, {} leads:", r.leads);
        println!(
            "    wall {:.3} s, daemon CPU {:.3} s, state rows changed {}",
            p.wall_secs, p.cpu_secs, p.state_rows_changed
        );
        if i == 0 {
            println!(
                "    {} loans placed ({:.0}/s), {:.1} µs daemon CPU per loan placed, peak RSS {:.1} MiB",
                p.loans_placed,
                r.loans_placed_per_sec.unwrap_or_default(),
                r.cpu_us_per_loan_placed.unwrap_or_default(),
                r.peak_rss_after_first_mib.unwrap_or_default()
            );
        }
        let flows = &p.summary;
        if let Some(rec) = flows.get("reconcile") {
            let n = p.loans_placed.max(1) as f64;
            // At the default ceilings (crego 10/s, credgenics 5/s) the slower API bounds the run.
            let at_defaults = (p.crego.requests as f64 / 10.0).max(p.credgenics.requests as f64 / 5.0);
            println!(
                "    {} loans checked: {:.2} Crego and {:.2} Credgenics requests per loan, {:.1} µs daemon CPU per \
                 loan; at the default rate limits (10/s, 5/s) {:.0} s ({:.1} min)",
                p.loans_placed,
                p.crego.requests as f64 / n,
                p.credgenics.requests as f64 / n,
                p.cpu_secs * 1e6 / n,
                at_defaults,
                at_defaults / 60.0
            );
            println!("    {rec}");
        } else {
            println!(
                "    flows: A {}, C {}, B {}",
                flows["place_loans"], flows["push_repayments"], flows["pull_recoveries"]
            );
        }
        api("Crego", &p.crego);
        api("Credgenics", &p.credgenics);
    }
    if let Some(rss) = r.peak_rss_mib {
        println!("peak RSS of the daemon over all cycles: {rss:.1} MiB");
    }
    for (leg, bound, p) in [
        ("placement", "Crego", &r.rate_placement),
        ("poll of every loan", "Credgenics", &r.rate_poll),
    ] {
        let Some(p) = p else { continue };
        let a = if bound == "Crego" { &p.crego } else { &p.credgenics };
        println!(
            "rate-limited run, {leg} ({bound} is the bound), limit {} requests/s on each API:",
            r.rate_limit
        );
        println!(
            "    wall {:.2} s, {bound} achieved {:.2} requests/s = {:.1} % of the limit",
            p.wall_secs,
            a.per_sec,
            a.per_sec * 100.0 / f64::from(r.rate_limit.max(1))
        );
        api("Crego", &p.crego);
        api("Credgenics", &p.credgenics);
    }
}
