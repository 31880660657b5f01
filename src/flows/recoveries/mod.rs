//! Flow B (design §1B): recoveries at Credgenics back into the LMS as records.
//!
//! Payments arrive by the `payment` webhook (see `server`) and by a poll of each placed loan's
//! `payment_history` (`GET /loan/{id}?fields=loan,payment`, kept for reconcile), which catches
//! missed webhooks. Both routes
//! produce the same deterministic key, so a payment seen twice is one ledger row; a payment that
//! flow C pushed (Credgenics reports those too) is recognised by its reference and never comes
//! back. Each row becomes one `POST /v1/lms/records/`.

use crate::runtime::heartbeat::waiting;
use crate::telemetry::events;
use futures::StreamExt;
use jiff::civil::DateTime;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::context::{Context, SyncError};
use crate::clock::Clock;
use crate::config::Config;
use crate::ledger::deliver::{DeliveryStats, Outbound, Prepared, Ready, deliver};
use crate::mapping::EvalEnv;
use crate::money;
use crate::store::{Direction, LedgerRow, LoanRow, NewLedgerRow, Store, StoreError};

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct FlowBStats {
    /// Loans whose payment history was read.
    pub polled: u64,
    /// Payments seen in those histories.
    pub payments_seen: u64,
    /// New ledger rows from the poll (not already known from a webhook).
    pub queued: u64,
    /// Payments the daemon itself pushed (flow C): never sent back.
    pub echoes: u64,
    pub delivery: DeliveryStats,
}

/// What became of one payment (from a webhook or the poll).
#[derive(Debug, PartialEq, Eq)]
pub enum PaymentFate {
    /// A ledger row exists for it (new or already known).
    Queued,
    /// No reference: stored, and the loan's payment history is read, which alone makes the row.
    HistoryRequested,
    /// Stored as a dead letter (an amount or date that cannot be written, a conflict): the reason.
    Rejected(String),
    /// Pushed by flow C: ignored.
    Echo,
    /// On a loan this daemon did not place: ignored.
    UnknownLoan,
}

/// What one Credgenics payment comes to.
#[derive(Debug)]
pub enum Recovery {
    /// The ledger row (new, or the same key as one already known).
    Row(Box<NewLedgerRow>),
    /// Pushed by flow C: never sent back.
    Echo,
    /// No reference and no `payment_id` (a webhook): only the loan's payment history can
    /// identify it.
    NeedsHistory,
}

/// The identity of a recovery (design §1B, §2.1): its reference when it has one, else the
/// `payment_id` of its `payment_history` entry; the same for the webhook and the poll. `None`
/// when it has neither (a webhook without a reference).
pub fn recovery_key(loan_id: &str, payment: &Value) -> Option<String> {
    let reference = payment_reference(payment);
    if !reference.is_empty() {
        return Some(format!("B:{loan_id}:{reference}"));
    }
    let pid = match &payment["payment_id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return None,
    };
    Some(format!("B:{loan_id}:pid:{pid}"))
}

/// A payment's reference as flow B reads it (the webhook's `reference_number`, else the
/// history's `payment_reference_number`), trimmed; reconcile reads it the same way.
pub fn payment_reference(payment: &Value) -> &str {
    payment["reference_number"]
        .as_str()
        .or(payment["payment_reference_number"].as_str())
        .unwrap_or_default()
        .trim()
}

/// A Credgenics payment (webhook `data` or a `payment_history` entry) as a ledger row.
pub fn payment_row(
    config: &Config,
    store: &Store,
    clock: &Clock,
    loan: &LoanRow,
    payment: &Value,
    origin: &'static str,
) -> Result<Recovery, StoreError> {
    let reference = payment_reference(payment).to_string();
    if !reference.is_empty() && store.wrote_reference(Direction::ToCredgenics, &loan.loan_id, &reference)? {
        return Ok(Recovery::Echo);
    }
    let Some(mut key) = recovery_key(&loan.loan_id, payment) else {
        return Ok(Recovery::NeedsHistory);
    };
    // Amounts come as JSON numbers: a string, even "250.50", is refused, not posted as text.
    let raw_amount = &payment["amount_recovered"];
    let amount = raw_amount.is_number().then(|| money::from_json(raw_amount)).flatten();
    // Documented history entries carry `created` only; the webhook carries `recovery_date`.
    let when_text = payment["recovery_date"]
        .as_str()
        .or(payment["created"].as_str())
        .unwrap_or_default();
    let when = parse_local(when_text, clock);
    let utr = if reference.is_empty() {
        format!("CG-{}", &hex::encode(Sha256::digest(key.as_bytes()))[..16])
    } else {
        reference.clone()
    };
    let event_at = when
        .and_then(|w| w.to_zoned(clock.tz().clone()).ok())
        .map(|z| z.timestamp().as_millisecond() as f64 / 1000.0);
    let mut dead_reason = recovery_problem(config, raw_amount, amount, event_at, when_text);
    // Compared as received (the row's own amount is the mapped one, as sent).
    if dead_reason.is_none()
        && let Some(known) = store.ledger_by_key(&key)?
        && let Some(first) = money::from_json(&known.source["amount_recovered"])
        && amount.is_some_and(|a| a.normalize() != first.normalize())
    {
        // The same payment told again with another amount: a conflict for a person, never silence
        // and never a second record.
        let reason = format!(
            "payment {} seen again with amount {} (first {}): not written; check it at Credgenics",
            key.trim_start_matches("B:"),
            raw_amount,
            first
        );
        events::RecoveryConflict {
            loan_id: &loan.loan_id,
            reason: &reason,
        }
        .emit();
        let digest = &hex::encode(Sha256::digest(payment.to_string().as_bytes()))[..12];
        key = format!("{key}:conflict:{digest}");
        dead_reason = Some(reason);
    }
    let input = json!({
        "payment": payment,
        "loan": {"loan_id": loan.loan_id, "account": loan.borrower_program_id, "allocation_month": loan.allocation_month},
        "allocation": crate::flows::loans::allocation_of(loan),
        "utr": utr,
        "recovery_epoch": event_at,
        "today": clock.today().to_string(),
    });
    let env = EvalEnv {
        tz_offset_secs: clock.utc_offset_secs(),
    };
    let payload = match config.mapping.record.eval(&input, &env) {
        Ok(m) => {
            if let Some(reason) = check_record(&m) {
                dead_reason.get_or_insert(reason);
            }
            Some(Value::Object(m))
        }
        Err(e) => {
            dead_reason.get_or_insert(e.to_string());
            None
        }
    };
    // The utr actually written is what the look-up and the echo check match on, and the amount
    // kept is the one written.
    let written_utr = payload
        .as_ref()
        .and_then(|p| p["utr"].as_str())
        .unwrap_or(&utr)
        .to_string();
    let written_amount = payload.as_ref().and_then(|p| money::from_json(&p["amount"])).or(amount);
    Ok(Recovery::Row(Box::new(NewLedgerRow {
        direction: Direction::ToCrego,
        source_key: key,
        loan_id: loan.loan_id.clone(),
        amount: written_amount.unwrap_or(Decimal::ZERO),
        reference: written_utr,
        allocation_month: payment["allocation_month"].as_str().map(str::to_string),
        payload,
        origin,
        source: payment.clone(),
        event_at: event_at.unwrap_or(0.0),
        dead_reason,
    })))
}

/// Why a recovery cannot be written into the LMS, if it cannot: its amount is not a JSON number
/// above 0 with at most `credgenics.amount_decimals` decimals and at most `webhook.max_amount`, or
/// its date is unreadable or outside the last ten years (or more than a day ahead).
fn recovery_problem(
    config: &Config,
    raw: &Value,
    amount: Option<Decimal>,
    event_at: Option<f64>,
    when_text: &str,
) -> Option<String> {
    let decimals = config.credgenics.amount_decimals;
    let Some(a) = amount else {
        let text = raw.to_string();
        let shown: String = text.chars().take(40).collect();
        let cut = if text.chars().count() > 40 { "…" } else { "" };
        return Some(if raw.is_number() {
            format!("amount_recovered {shown}{cut} is not an exact decimal amount (too many digits)")
        } else {
            format!("amount_recovered {shown} is not a JSON number")
        });
    };
    if a <= Decimal::ZERO {
        return Some(format!("amount_recovered {a} is not a positive amount"));
    }
    if a.normalize().scale() > decimals {
        return Some(format!("amount_recovered {a} has more than {decimals} decimals"));
    }
    if a > config.webhook.max_amount {
        return Some(format!(
            "amount_recovered {a} is above webhook.max_amount ({})",
            config.webhook.max_amount
        ));
    }
    let Some(at) = event_at else {
        return Some(format!("recovery date `{when_text}` is not YYYY-MM-DD[ HH:MM:SS]"));
    };
    // By the real clock: CCSYNC_NOW may set the daemon's in the past on purpose.
    let now = crate::clock::wall_secs();
    if at < now - 10.0 * 366.0 * 86400.0 || at > now + 86400.0 {
        return Some(format!("recovery date `{when_text}` is outside the last ten years"));
    }
    None
}

/// Preflight of a Crego record: `type`, `account` and `utr` present, `amount` > 0, `date` epoch
/// seconds. Every failing field and why, or `None`.
pub fn check_record(m: &serde_json::Map<String, Value>) -> Option<String> {
    let mut errors = serde_json::Map::new();
    for k in ["type", "account", "utr"] {
        if m.get(k).and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
            errors.insert(
                k.into(),
                Value::String("This field is required (a non-empty string)".into()),
            );
        }
    }
    if m.get("amount")
        .and_then(money::from_json)
        .is_none_or(|a| a <= Decimal::ZERO)
    {
        errors.insert("amount".into(), Value::String("must be a number greater than 0".into()));
    }
    if !m.get("date").is_some_and(Value::is_number) {
        errors.insert("date".into(), Value::String("must be epoch seconds (a number)".into()));
    }
    crate::partners::credgenics::preflight(errors)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` or `YYYY-MM-DD` in the configured zone, to the second.
fn parse_local(s: &str, _clock: &Clock) -> Option<DateTime> {
    let s = s.trim();
    let dt = if s.len() == 10 {
        s.parse::<jiff::civil::Date>()
            .ok()?
            .to_datetime(jiff::civil::Time::midnight())
    } else {
        s.replacen(' ', "T", 1).parse::<DateTime>().ok()?
    };
    dt.round(jiff::Unit::Second).ok()
}

/// Takes one webhook `payment` event's `data` into the ledger (with the raw event), before the 200.
pub fn take_webhook_payment(
    config: &Config,
    store: &Store,
    clock: &Clock,
    body: &str,
    data: &Value,
) -> Result<PaymentFate, StoreError> {
    let now = clock.now().as_millisecond() as f64 / 1000.0;
    let loan_id = data["loan_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| data["loan_id"].to_string());
    if config.credgenics.mode == crate::config::CredgenicsMode::CreditLine {
        // Credit-line mode (design §8): the event names a customer or a transaction, and the
        // customer's payment history alone identifies a recovery: read it on the next run.
        store.record_webhook("payment", body, None, now)?;
        return Ok(match store.cl_request_poll(&loan_id)? {
            Some(_) => PaymentFate::HistoryRequested,
            None => PaymentFate::UnknownLoan,
        });
    }
    let Some(loan) = store.loan(&loan_id)? else {
        store.record_webhook("payment", body, None, now)?;
        return Ok(PaymentFate::UnknownLoan);
    };
    match payment_row(config, store, clock, &loan, data, "credgenics_webhook")? {
        Recovery::Row(row) => {
            store.record_webhook("payment", body, Some(&row), now)?;
            Ok(match &row.dead_reason {
                None => PaymentFate::Queued,
                Some(reason) => PaymentFate::Rejected(reason.clone()),
            })
        }
        Recovery::Echo => {
            store.record_webhook("payment", body, None, now)?;
            Ok(PaymentFate::Echo)
        }
        Recovery::NeedsHistory => {
            store.record_webhook("payment", body, None, now)?;
            store.request_poll(&loan.loan_id)?;
            Ok(PaymentFate::HistoryRequested)
        }
    }
}

/// Which loans the poll reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Poll {
    /// None (deliver only).
    Skip,
    /// Loans not read since this instant (the last slot of the poll schedule).
    NotSince(f64),
    /// Every open loan.
    All,
}

/// One run of flow B: read the histories webhooks asked for and poll the loans due, then deliver
/// the rows (from webhooks and the poll).
pub async fn run(ctx: &Context, poll: Poll, stats: &mut FlowBStats) -> Result<(), SyncError> {
    let since = match poll {
        Poll::Skip => None,
        Poll::NotSince(t) => Some(t),
        Poll::All => Some(f64::INFINITY),
    };
    {
        let _poll = waiting(ctx.locks.poll.lock()).await;
        let mut after = String::new();
        loop {
            let loans = ctx.store.loans_poll_requested(&after, POLL_BATCH)?;
            let Some(last) = loans.last() else { break };
            after = last.loan_id.clone();
            poll_batch(ctx, loans, stats).await?;
            if ctx.stopping() {
                return Ok(());
            }
        }
    }
    if let Some(since) = since {
        let _poll = waiting(ctx.locks.poll.lock()).await;
        let mut after = String::new();
        loop {
            let loans = ctx.store.loans_to_poll(since, &after, POLL_BATCH)?;
            let Some(last) = loans.last() else { break };
            after = last.loan_id.clone();
            poll_batch(ctx, loans, stats).await?;
            if ctx.stopping() {
                break;
            }
        }
    }
    deliver(ctx, &Records, &mut stats.delivery).await
}

/// Loans read per batch of the poll (and per transaction recording what it found).
const POLL_BATCH: u32 = 200;

/// Reads the payment histories of a batch of loans and records what they hold.
async fn poll_batch(ctx: &Context, loans: Vec<crate::store::LoanRow>, stats: &mut FlowBStats) -> Result<(), SyncError> {
    let concurrency = ctx.config.credgenics.limits.max_in_flight;
    let mut results = futures::stream::iter(loans)
        .map(|loan| async move {
            if ctx.stopping() {
                return (loan, None);
            }
            // The full loan (allocations too): reconcile reuses this read the same night.
            let r = ctx.credgenics.full_loan(&loan.loan_id).await;
            (loan, Some(r))
        })
        .buffer_unordered(concurrency);
    let mut auth_error = None;
    let (mut rows, mut polled, mut reads) = (Vec::new(), Vec::new(), Vec::new());
    while let Some((loan, r)) = results.next().await {
        let Some(r) = r else { continue };
        let history = match r {
            Ok(Some(body)) => {
                let history = match body.get("payment_history") {
                    Some(Value::Array(a)) => a.clone(),
                    _ => Vec::new(),
                };
                reads.push((loan.loan_id.clone(), body));
                history
            }
            Ok(None) => Vec::new(),
            Err(e) if e.stops_run() => {
                auth_error = Some(e);
                continue;
            }
            Err(e) => {
                events::poll_failed(&loan.loan_id, &e);
                continue;
            }
        };
        stats.polled += 1;
        stats.payments_seen += history.len() as u64;
        for p in &history {
            match payment_row(&ctx.config, &ctx.store, &ctx.clock, &loan, p, "credgenics_poll")? {
                Recovery::Row(row) => rows.push(*row),
                Recovery::Echo => stats.echoes += 1,
                Recovery::NeedsHistory => {
                    events::payment_unidentifiable(&loan.loan_id);
                }
            }
        }
        polled.push(loan.loan_id);
    }
    if !ctx.dry_run {
        stats.queued += ctx.store.record_poll_reads(&rows, &polled, &reads, ctx.now_secs())? as u64;
        ctx.progressed(|| format!("B: {} loans polled, {} recoveries queued", stats.polled, stats.queued));
    }
    match auth_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Flow B's side of delivery: recoveries to the LMS as records.
pub struct Records;

impl Outbound for Records {
    const DIRECTION: Direction = Direction::ToCrego;

    async fn prepare(&self, ctx: &Context, row: &LedgerRow) -> Result<Prepared, SyncError> {
        Ok(match &row.payload {
            Some(p) => Prepared::Send(Ready::stored(row, p)),
            // An operator's retry: mapped again from the source with the current mapping.
            None => remap(ctx, row)?,
        })
    }
}

/// Maps a recovery again from its source (an operator's retry), or says why it cannot be.
fn remap(ctx: &Context, row: &LedgerRow) -> Result<Prepared, SyncError> {
    let Some(loan) = ctx
        .store
        .loan_or_customer(&row.loan_id, row.allocation_month.as_deref())?
    else {
        return Ok(Prepared::Dead(format!("loan {} is not in the state", row.loan_id)));
    };
    let origin = if row.origin == "credgenics_webhook" {
        "credgenics_webhook"
    } else {
        "credgenics_poll"
    };
    let fresh = payment_row(&ctx.config, &ctx.store, &ctx.clock, &loan, &row.source, origin)?;
    Ok(match fresh {
        Recovery::Echo => Prepared::Dead("the payment is now recognised as one this daemon wrote (an echo)".into()),
        Recovery::NeedsHistory => Prepared::Dead("the payment has neither a reference nor a payment_id".into()),
        Recovery::Row(r) => match (r.payload, r.dead_reason) {
            (Some(payload), None) => Prepared::Send(Ready {
                payload,
                reference: r.reference,
                month: r.allocation_month,
                amount: r.amount,
            }),
            (_, Some(reason)) => Prepared::Dead(reason),
            (None, None) => Prepared::Dead("the mapping produced no payload".into()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_dates_are_read_to_the_second() {
        let clock = Clock::system(jiff::tz::TimeZone::get("Asia/Kolkata").unwrap());
        assert_eq!(
            parse_local("2021-09-12 00:59:51", &clock).unwrap().to_string(),
            "2021-09-12T00:59:51"
        );
        assert_eq!(
            parse_local("2020-09-12 00:59:51.418571", &clock).unwrap().to_string(),
            "2020-09-12T00:59:51"
        );
        assert_eq!(
            parse_local("2022-01-08", &clock).unwrap().to_string(),
            "2022-01-08T00:00:00"
        );
        assert!(parse_local("12/01/2022", &clock).is_none());
    }
}
