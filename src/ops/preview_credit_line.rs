//! `preview --lead ID` / `preview --loan ID` in credit-line mode (design §8): each line of the
//! lead with its drawdowns as `[mapping.transaction]` reads them, the Upload Transaction payload
//! of each, its preflight verdict, and where the transaction stands — writing nothing anywhere.
//! Personal data is masked unless `--reveal`.

use std::fmt::Write as _;

use serde_json::json;

use crate::clock;
use crate::flows::Context;
use crate::flows::credit_line::drawdown;
use crate::partners::crego::LineItem;

/// The preview of one lead's lines and their drawdowns, as text.
pub async fn lead(ctx: &Context, lead_id: &str) -> Result<String, String> {
    let lead = ctx.crego.lead(lead_id).await.map_err(|e| e.to_string())?;
    let programs = ctx.crego.programs(lead_id).await.map_err(|e| e.to_string())?;
    let month = clock::allocation_month(ctx.clock.today());
    let min_dpd = ctx.config.sync.min_dpd;
    let mut out = String::new();
    for program in programs.iter().filter(|p| p["line_detail"].is_object()) {
        let bp = program["id"].as_str().unwrap_or_default();
        let mut line = program["line_detail"].clone();
        line["lead_id"] = json!(lead_id);
        line["borrower_program_id"] = json!(bp);
        let item = LineItem::with_links(line, lead_id.to_string(), bp.to_string())?;
        let listed = ctx.crego.drawdowns(bp).await.map_err(|e| e.to_string())?;
        let _ = writeln!(
            out,
            "== line (borrower-program) {bp}: dpd {}, due {}; {} drawdown(s)",
            item.dpd,
            item.due_amount,
            listed.len()
        );
        for (kind, raw) in listed {
            let d = match drawdown::read(ctx, &lead, program, kind, raw) {
                Ok(d) => d,
                Err(e) => {
                    let _ = writeln!(out, "-- a {kind} that [mapping.transaction] cannot read: {e}\n");
                    continue;
                }
            };
            let overdue = d.is_overdue(min_dpd);
            let _ = writeln!(
                out,
                "-- {kind} {} → transaction {} of customer {}: dpd {}, due {}, outstanding {} ({})",
                d.drawdown_id,
                d.transaction_id,
                d.customer_id,
                d.dpd,
                d.due_amount,
                d.total_outstanding,
                if overdue { "overdue" } else { "not overdue" }
            );
            match drawdown::map_upload(ctx, &lead, program, &d, &month) {
                Ok(p) => {
                    let shown = if ctx.reveal {
                        p
                    } else {
                        crate::telemetry::mask_payload(&p)
                    };
                    let _ = writeln!(
                        out,
                        "payload (Upload Transaction, POST /loan/{}), preflight passes:\n{}",
                        d.transaction_id,
                        serde_json::to_string_pretty(&shown).unwrap_or_default()
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "payload FAILS: {}", crate::telemetry::mask_digits(&e));
                }
            }
            let state = ctx.store.cl_transaction(&d.transaction_id).map_err(|e| e.to_string())?;
            let _ = match state {
                None => writeln!(
                    out,
                    "last sent: never{}\n",
                    if overdue { " — the next run uploads it" } else { "" }
                ),
                Some(t) => writeln!(
                    out,
                    "state: {} (allocation month {}){}\n",
                    t.state.as_str(),
                    t.allocation_month.as_deref().unwrap_or("none"),
                    t.last_error.map(|e| format!("; last refusal: {e}")).unwrap_or_default()
                ),
            };
        }
    }
    if out.is_empty() {
        return Err(format!(
            "lead {lead_id} has no line (no borrower-program with a line detail)"
        ));
    }
    Ok(out)
}

/// `--loan`: a customer or transaction id, previewed through its lead.
pub async fn loan(ctx: &Context, id: &str) -> Result<String, String> {
    let store = &ctx.store;
    let customer = match store.cl_customer(id).map_err(|e| e.to_string())? {
        Some(c) => Some(c),
        None => match store.cl_transaction(id).map_err(|e| e.to_string())? {
            Some(t) => store.cl_customer(&t.customer_id).map_err(|e| e.to_string())?,
            None => None,
        },
    };
    let Some(c) = customer else {
        return Err(format!(
            "{id} is neither a customer nor a transaction this daemon placed; preview its lead with --lead"
        ));
    };
    let text = lead(ctx, &c.lead_id).await?;
    Ok(format!(
        "customer {} (line {}) of lead {}:\n{text}",
        c.customer_id, c.borrower_program_id, c.lead_id
    ))
}
