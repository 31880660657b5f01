//! The doctor's checks, in the order an operator would fix them: the state folder, the clock,
//! Crego (credential, line details, the line links, records and their link), Credgenics
//! (credential, the "absent" answer, the company, a placed loan), the mapping of the first
//! overdue line against the documented rules, and the webhook. A check that needs an earlier
//! one's answer is skipped when that one failed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::local::{offset_text, state, webhook};
use super::verdict::Check;
use crate::clock::{self, Clock};
use crate::config::Config;
use crate::flows::Context;
use crate::flows::loans::{is_overdue, loan_input, map_loan_input};
use crate::partners::credgenics::rules;
use crate::partners::crego::LineItem;
use crate::partners::http::{Api, ApiError};
use crate::store::{LoanState, Store};

/// Pages of line details read at most to find an overdue line.
const OVERDUE_SEARCH_PAGES: u32 = 5;
/// A loan id no tenant has: what reading it answers is the tenant's "absent".
const PROBE_LOAN_ID: &str = "ccsync-doctor-probe-0000";

pub(super) async fn all(config: Arc<Config>, list: &mut Vec<Check>) {
    list.push(state(&config.state_path));
    let clock = match Clock::from_env(config.sync.timezone.clone()) {
        Ok((clock, _)) => clock,
        Err(e) => {
            list.push(Check::fail(
                "clock",
                e.to_string(),
                "unset CCSYNC_NOW or give an RFC 3339 time",
            ));
            return;
        }
    };
    let today = clock.today();
    list.push(Check::pass(
        "time zone",
        format!(
            "{}: today is {today} (UTC{}), allocation month {}",
            config.sync.timezone.iana_name().unwrap_or("(zone)"),
            offset_text(clock.utc_offset_secs()),
            clock::allocation_month(today)
        ),
    ));
    // Nothing is written: an in-memory state serves the mapping's context.
    let ctx = match Store::in_memory()
        .map_err(|e| e.to_string())
        .and_then(|s| Context::new(config.clone(), Arc::new(s), clock).map_err(|e| e.to_string()))
    {
        Ok(ctx) => ctx.dry(false),
        Err(e) => {
            list.push(Check::fail("setup", e, "see the message"));
            return;
        }
    };
    let placed = placed_loan(&config.state_path);

    let first_page = crego_reads(&ctx, list).await;
    let linked = match &first_page {
        Some(items) => line_links(&ctx, items, list).await,
        None => {
            list.push(Check::skip("line links", "needs the line details"));
            HashSet::new()
        }
    };
    if first_page.is_some() {
        records(&ctx, &linked, placed.as_ref(), list).await;
    } else {
        list.push(Check::skip("record link", "needs Crego access"));
    }
    credgenics(&ctx, placed.as_ref(), list).await;
    if first_page.is_some() {
        mapping(&ctx, list).await;
    } else {
        list.push(Check::skip("mapping", "needs the line details"));
    }
    webhook(&config, list).await;
}

/// A placed loan of the state, if there is a state (read-only; the daemon may be running).
fn placed_loan(path: &Path) -> Option<String> {
    if !path.exists() {
        return None;
    }
    let store = Store::open_read_only(path).ok()?;
    let loans = store.loans_in_state(LoanState::Placed).ok()?;
    loans.into_iter().next().map(|l| l.loan_id)
}

/// The fix for a failed read of `api` at the path `path_key` names.
fn fix_for(e: &ApiError, path_key: &str) -> String {
    let api = e.api();
    match e {
        ApiError::Unauthorized { .. } => format!(
            "use the credential {api} issued for this environment (UAT/preprod or production, as {} is)",
            api.base_url_key()
        ),
        ApiError::Misconfigured { .. } => "set credgenics.company_id".into(),
        ApiError::NotFound { .. } | ApiError::Redirected { .. } => {
            format!("check {} and {path_key}", api.base_url_key())
        }
        ApiError::Connect { .. } | ApiError::Timeout { .. } | ApiError::NoToken { .. } => format!(
            "check {} and that this host can reach it (DNS, proxy, firewall)",
            api.base_url_key()
        ),
        ApiError::BadBody { .. } => format!("the answer is not the documented shape: check {path_key}"),
        ApiError::Rejected { .. } if api == Api::Crego => {
            format!("check {path_key} and the list filters' names ([crego.filters])")
        }
        _ => format!("check {} and {path_key}", api.base_url_key()),
    }
}

/// Crego's credential and the first page of line details: its items, or `None` when unreadable.
async fn crego_reads(ctx: &Context, list: &mut Vec<Check>) -> Option<Vec<Value>> {
    match ctx.crego.line_details_page(0.0, 1).await {
        Ok(page) => {
            list.push(Check::pass(
                "crego",
                format!(
                    "credential accepted; the first page of line details lists {} item(s)",
                    page.results.len()
                ),
            ));
            Some(page.results)
        }
        Err(e) => {
            list.push(Check::fail(
                "crego",
                e.to_string(),
                fix_for(&e, "crego.line_details_path"),
            ));
            None
        }
    }
}

/// The first line item's links yield a lead and a borrower-program that resolve. Returns the
/// borrower-program ids the links give on the page (for the record check).
async fn line_links(ctx: &Context, items: &[Value], list: &mut Vec<Check>) -> HashSet<String> {
    const NAME: &str = "line links";
    let links = &ctx.config.mapping.link;
    let linked = items
        .iter()
        .filter_map(|i| links.line_ids(i).ok().map(|(_, bp)| bp))
        .collect();
    let Some(first) = items.first() else {
        list.push(Check::warn(
            NAME,
            "no line details are listed: nothing to check the links on",
            "run doctor again once the LMS has lines",
        ));
        return linked;
    };
    let id = first["id"].as_str().unwrap_or("?");
    let (lead, bp) = match links.line_ids(first) {
        Ok(ids) => ids,
        Err(e) => {
            let keys: Vec<&str> = first
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            list.push(Check::fail(
                NAME,
                format!("line {id}: {e}"),
                format!(
                    "set [mapping.link] line_lead_id and line_borrower_program_id to the fields that name \
                     them; this item's keys: {}",
                    keys.join(", ")
                ),
            ));
            return linked;
        }
    };
    let fetched = tokio::try_join!(ctx.crego.lead(&lead), ctx.crego.programs(&lead));
    match fetched {
        Ok((_, programs)) if programs.iter().any(|p| p["id"] == bp.as_str()) => list.push(Check::pass(
            NAME,
            format!("line {id} → lead {lead}, borrower-program {bp}: both found"),
        )),
        Ok(_) => list.push(Check::fail(
            NAME,
            format!("line {id} → borrower-program {bp}, which lead {lead}'s programs do not list"),
            "check mapping.link.line_borrower_program_id (it must give the program entry's `id`)",
        )),
        Err(e @ ApiError::NotFound { .. }) => list.push(Check::fail(
            NAME,
            format!("line {id} → lead {lead}: {e}"),
            "check mapping.link.line_lead_id and crego.lead_path",
        )),
        Err(e) => list.push(Check::fail(
            NAME,
            format!("line {id} → lead {lead}: {e}"),
            fix_for(&e, "crego.lead_path and crego.programs_path"),
        )),
    }
    linked
}

/// A page of repayment records parses and the first record's link names a known line or loan.
async fn records(ctx: &Context, linked: &HashSet<String>, placed: Option<&String>, list: &mut Vec<Check>) {
    const NAME: &str = "record link";
    let page = match ctx.crego.records_page(0.0, 1).await {
        Ok(p) => p,
        Err(e) => {
            list.push(Check::fail(NAME, e.to_string(), fix_for(&e, "crego.records_path")));
            return;
        }
    };
    let Some(record) = page.results.first() else {
        list.push(Check::warn(
            NAME,
            "no repayment records are listed: nothing to check the link on",
            "run doctor again once the LMS has a repayment",
        ));
        return;
    };
    let id = record["id"].as_str().unwrap_or("?");
    let link = &ctx.config.mapping.link;
    match link.record_program(record) {
        Err(e) => list.push(Check::fail(
            NAME,
            format!("record {id}: {e}"),
            "set mapping.link.record_borrower_program_id to the field naming the borrower-program",
        )),
        Ok(bp) => {
            let known = linked.contains(&bp) || placed.is_some_and(|_| on_placed_loan(ctx, &bp));
            if known {
                list.push(Check::pass(
                    NAME,
                    format!("record {id} → borrower-program {bp}, a known line"),
                ));
            } else {
                list.push(Check::warn(
                    NAME,
                    format!("record {id} → {bp}, which is neither on the first page of line details nor a placed loan"),
                    "if records do not name the borrower-program's id there, set \
                     mapping.link.record_borrower_program_id",
                ));
            }
        }
    }
}

fn on_placed_loan(ctx: &Context, bp: &str) -> bool {
    Store::open_read_only(&ctx.config.state_path)
        .ok()
        .and_then(|s| s.loan_by_program(bp).ok().flatten())
        .is_some()
}

/// Credgenics: the credential (and the company), the answer for a loan it does not have, and a
/// placed loan found.
async fn credgenics(ctx: &Context, placed: Option<&String>, list: &mut Vec<Check>) {
    const NAME: &str = "credgenics";
    let company = || {
        ctx.credgenics
            .http()
            .learned_company()
            .map(|c| format!("; company_id {c} (from the token answer)"))
            .unwrap_or_default()
    };
    match ctx.credgenics.get_loan(PROBE_LOAN_ID, None).await {
        Ok(None) => list.push(Check::pass(
            NAME,
            format!("credential accepted; an unknown loan reads as absent{}", company()),
        )),
        Ok(Some(_)) => list.push(Check::warn(
            NAME,
            format!("credential accepted; the probe loan {PROBE_LOAN_ID} exists"),
            "nothing to change, but an unknown loan's answer could not be seen",
        )),
        Err(e @ ApiError::Rejected { .. }) => {
            list.push(Check::fail(
                NAME,
                format!("reading a loan Credgenics does not have: {e}"),
                "if this is how the tenant says 'no such loan', add its status to \
                 credgenics.absent_statuses (and its text to absent_message); otherwise check \
                 credgenics.base_url and credgenics.loan_path",
            ));
            list.push(Check::skip("loan path", "needs Credgenics access"));
            return;
        }
        Err(e) => {
            list.push(Check::fail(NAME, e.to_string(), fix_for(&e, "credgenics.loan_path")));
            list.push(Check::skip("loan path", "needs Credgenics access"));
            return;
        }
    }
    const PATH: &str = "loan path";
    match placed {
        None => list.push(Check::warn(
            PATH,
            "no placed loan yet to read back, so credgenics.loan_path is not confirmed",
            "after the first run, doctor reads a placed loan back",
        )),
        Some(id) => match ctx.credgenics.get_loan(id, None).await {
            Ok(Some(_)) => list.push(Check::pass(PATH, format!("placed loan {id} is found at Credgenics"))),
            Ok(None) => list.push(Check::fail(
                PATH,
                format!("placed loan {id} reads as absent"),
                "check credgenics.base_url and credgenics.loan_path (or the loan was deleted at Credgenics)",
            )),
            Err(e) => list.push(Check::fail(PATH, e.to_string(), fix_for(&e, "credgenics.loan_path"))),
        },
    }
}

/// The mapping of the first overdue line (within a few pages) passes the documented rules.
async fn mapping(ctx: &Context, list: &mut Vec<Check>) {
    const NAME: &str = "mapping";
    let mut found = None;
    let (mut read, mut unreadable) = (0, None);
    for page in 1..=OVERDUE_SEARCH_PAGES {
        let page = match ctx.crego.line_details_page(0.0, page).await {
            Ok(p) => p,
            Err(e) => {
                list.push(Check::fail(NAME, e.to_string(), fix_for(&e, "crego.line_details_path")));
                return;
            }
        };
        for raw in page.results {
            match LineItem::from_value(raw, &ctx.config.mapping.link) {
                Ok(item) => {
                    read += 1;
                    if is_overdue(ctx, &item) {
                        found = Some(item);
                        break;
                    }
                }
                Err(e) => {
                    unreadable.get_or_insert(e);
                }
            }
        }
        if found.is_some() || !page.has_next {
            break;
        }
    }
    if let (None, 0, Some(e)) = (&found, read, &unreadable) {
        list.push(Check::fail(
            NAME,
            format!("no line item could be read: {e}"),
            "see `line links` above",
        ));
        return;
    }
    let Some(item) = found else {
        list.push(Check::warn(
            NAME,
            format!("no overdue line in the first {OVERDUE_SEARCH_PAGES} page(s) of line details"),
            "use `preview --lead <id>` on an overdue borrower",
        ));
        return;
    };
    let fetched = tokio::try_join!(ctx.crego.lead(&item.lead_id), ctx.crego.programs(&item.lead_id));
    let (lead, programs) = match fetched {
        Ok(x) => x,
        Err(e) => {
            list.push(Check::fail(NAME, e.to_string(), fix_for(&e, "crego.lead_path")));
            return;
        }
    };
    let Some(program) = programs.iter().find(|p| p["id"] == item.borrower_program_id.as_str()) else {
        list.push(Check::fail(
            NAME,
            format!(
                "line {}: its borrower-program is not among its lead's programs",
                item.id
            ),
            "check mapping.link.line_borrower_program_id",
        ));
        return;
    };
    let month = clock::allocation_month(ctx.clock.today());
    let input = loan_input(ctx, &lead, program, &item, &month);
    let env = crate::mapping::EvalEnv {
        tz_offset_secs: ctx.clock.utc_offset_secs(),
    };
    let payload = match map_loan_input(&ctx.config, env, &input) {
        Ok(p) => p,
        Err(e) => {
            list.push(Check::fail(
                NAME,
                format!("line {}: {e}", item.id),
                "fix the [mapping] expression named; `preview --lead` shows the input document",
            ));
            return;
        }
    };
    let loan_id = payload["loan_id"].as_str().unwrap_or_default().to_string();
    let shown = serde_json::to_string_pretty(&crate::telemetry::mask_payload(&payload)).unwrap_or_default();
    let errors = rules::check_upload(&loan_id, &payload);
    if errors.is_empty() {
        list.push(
            Check::pass(
                NAME,
                format!(
                    "overdue line {} → loan {loan_id}: the payload passes preflight",
                    item.id
                ),
            )
            .with_extra(shown),
        );
    } else {
        let reasons = crate::partners::credgenics::preflight(errors).unwrap_or_default();
        list.push(
            Check::fail(
                NAME,
                format!("overdue line {} → loan {loan_id}: preflight refuses {reasons}", item.id),
                "fix the [mapping.loan] / [mapping.default] expressions of those fields",
            )
            .with_extra(shown),
        );
    }
}
