//! Flow A's choice for one changed line (design §1A), as values the pipeline applies, in two
//! steps: [`triage`] reads the line and the loan's state (skip, defer, settle — or map), and only
//! when told to map does the caller fetch the lead and programs, map, and ask [`decide`] with the
//! payload and the allocation month. Pure — no HTTP, no SQLite, no clock — so every row of §1A is
//! a table test, and `#[must_use]` makes every caller act on what was decided. Two types, so no
//! caller handles an answer that cannot come at its step.

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::store::{LoanRow, LoanState};

/// The payload key holding the allocation's claim (frozen within its month).
pub const CLAIM_KEY: &str = "defaults";

/// The numbers of a line that the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub dpd: i64,
    pub due_amount: Decimal,
    pub total_outstanding: Decimal,
}

impl Line {
    /// Overdue (design §1A): `dpd >= min_dpd` and dues left. The one place this is decided, for
    /// the flow and for `preview`.
    pub fn is_overdue(&self, min_dpd: i64) -> bool {
        self.dpd >= min_dpd && self.due_amount > Decimal::ZERO
    }
}

/// A mapped Upload Loan payload, or why there is none (the mapping failed).
pub type Mapped = Result<Value, String>;

/// What a line needs before any payload exists.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Triage {
    /// Nothing to do: not overdue and never placed, or already in the state its line implies.
    Skip,
    /// Its loan's last upload is in doubt: read the line afresh once the look-up settles it.
    Defer,
    /// A placed loan no longer overdue: cured, or closed at zero outstanding. No call.
    Settle(LoanState),
    /// Overdue: fetch the lead and programs, map, and [`decide`] with the payload.
    Map,
}

/// What to do with an overdue line's mapped payload.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The payload cannot be sent (mapping failed, `loan_id` changed, preflight refused it).
    Reject(String),
    /// The very payload Credgenics already refused: sending it again cannot help.
    AlreadyRefused,
    /// Same month, same payload: no call. `reactivate`: a cured or closed loan overdue again.
    Unchanged { reactivate: bool },
    /// Same month, only keys the mapping dropped: remember the payload, no call (Credgenics
    /// cannot unset a key).
    Remember,
    /// Same month, changed loan-level keys: PATCH them (never the claim).
    Patch(Map<String, Value>),
    /// First time, or a new allocation month while still overdue: POST the whole payload.
    Upload { new_allocation: bool },
}

/// The first step for one line: what its numbers and its loan's state call for.
pub fn triage(line: &Line, min_dpd: i64, loan: Option<&LoanRow>) -> Triage {
    if loan.is_some_and(|l| l.state == LoanState::Uploading) {
        return Triage::Defer;
    }
    if !line.is_overdue(min_dpd) {
        let Some(loan) = loan else {
            return Triage::Skip;
        };
        let state = if line.total_outstanding.is_zero() {
            LoanState::Closed
        } else {
            LoanState::Cured
        };
        // Never placed (a rejected first upload) or already there: nothing to settle.
        if loan.state == state || loan.allocation_month.is_none() {
            return Triage::Skip;
        }
        return Triage::Settle(state);
    }
    Triage::Map
}

/// The second step, for a line [`triage`] sent to be mapped: `mapped` is the mapping's result,
/// `hash` its payload's hash, `month` the allocation month now; `preflight` checks a payload for
/// `loan_id` against the documented rules.
pub fn decide(
    loan: Option<&LoanRow>,
    month: &str,
    mapped: &Mapped,
    hash: &str,
    preflight: impl FnOnce(&str, &Value) -> Option<String>,
) -> Decision {
    let payload = match mapped {
        Ok(p) => p,
        Err(reason) => return Decision::Reject(reason.clone()),
    };
    let loan_id = payload["loan_id"].as_str().unwrap_or_default();
    if let Some(loan) = loan
        && loan.loan_id != loan_id
    {
        return Decision::Reject(format!(
            "mapped loan_id `{loan_id}` differs from `{}` already placed for this borrower-program; \
             the mapping of loan_id must not change for placed loans",
            loan.loan_id
        ));
    }
    // A valid whole payload makes every PATCH of its keys valid too.
    if let Some(reason) = preflight(loan_id, payload) {
        return Decision::Reject(reason);
    }
    if loan.is_some_and(|l| l.rejected_hash.as_deref() == Some(hash)) {
        return Decision::AlreadyRefused;
    }
    match loan {
        Some(loan) if loan.allocation_month.as_deref() == Some(month) => {
            if loan.payload_hash.as_deref() == Some(hash) {
                return Decision::Unchanged {
                    reactivate: loan.state != LoanState::Placed,
                };
            }
            let patch = changed_keys(loan.payload.as_ref().unwrap_or(&Value::Null), payload);
            if patch.is_empty() {
                Decision::Remember
            } else {
                Decision::Patch(patch)
            }
        }
        other => Decision::Upload {
            new_allocation: other.is_some_and(|l| l.allocation_month.is_some()),
        },
    }
}

/// The loan's current allocation as Credgenics holds it: the claim snapshot (`defaults[0]` of the
/// payload, with `date_of_default`, `total_claim_amount`, `allocation_month`), `null` before one.
pub fn allocation_of(loan: &LoanRow) -> Value {
    loan.payload
        .as_ref()
        .and_then(|p| p[CLAIM_KEY].get(0))
        .cloned()
        .unwrap_or(Value::Null)
}

/// What Credgenics holds after a PATCH (or a remembered payload) within the month: `new`'s
/// loan-level keys with `old`'s claim, which no PATCH changes. The payment and record mappings
/// read that claim as the allocation (issue 13), so it must be the one sent, not the latest seen.
pub fn held_payload(old: Option<&Value>, mut new: Value) -> Value {
    if let (Some(claim), Some(obj)) = (old.and_then(|o| o.get(CLAIM_KEY)), new.as_object_mut()) {
        obj.insert(CLAIM_KEY.to_string(), claim.clone());
    }
    new
}

/// The loan-level keys of `new` that differ from `old`. The allocation's claim — its
/// `defaults[]` entry — is a snapshot taken when the allocation is created and is never PATCHed
/// within the month (design §1A): repayments reach Credgenics as payments, never also as a lower
/// claim, or a recovery would count twice.
pub fn changed_keys(old: &Value, new: &Value) -> Map<String, Value> {
    let mut patch = Map::new();
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return patch;
    };
    for (k, v) in new {
        if k == "loan_id" || k == CLAIM_KEY {
            continue;
        }
        if old.get(k) != Some(v) {
            patch.insert(k.clone(), v.clone());
        }
    }
    patch
}

/// The claim keys whose value differs between two payloads of one month: what a PATCH would have
/// carried if the claim were not a snapshot (`preview` shows them as frozen).
pub fn frozen_claim_changes(old: &Value, new: &Value) -> Vec<String> {
    let first = |v: &Value| {
        v.get(CLAIM_KEY)
            .and_then(|d| d.get(0))
            .and_then(Value::as_object)
            .cloned()
    };
    let (Some(od), Some(nd)) = (first(old), first(new)) else {
        return Vec::new();
    };
    nd.iter()
        .filter(|(k, v)| od.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MONTH: &str = "2026-11-01";

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }
    const MIN_DPD: i64 = 1;

    fn overdue() -> Line {
        Line {
            dpd: 12,
            due_amount: d("5000"),
            total_outstanding: d("90000"),
        }
    }

    fn cured() -> Line {
        Line {
            dpd: 0,
            due_amount: d("0"),
            total_outstanding: d("85000"),
        }
    }

    fn paid_off() -> Line {
        Line {
            dpd: 0,
            due_amount: d("0"),
            total_outstanding: d("0"),
        }
    }

    fn payload(mobile: &str, claim: i64) -> Value {
        json!({"loan_id": "CL1", "applicant_contact_number": mobile,
               "defaults": [{"allocation_month": MONTH, "total_claim_amount": claim}]})
    }

    fn loan(state: LoanState, month: Option<&str>, sent: Option<&Value>) -> LoanRow {
        LoanRow {
            loan_id: "CL1".into(),
            borrower_program_id: "bp".into(),
            lead_id: "lead".into(),
            program_id: None,
            allocation_month: month.map(str::to_string),
            state,
            payload: sent.cloned(),
            payload_hash: sent.map(hash),
            pending: None,
            rejected_hash: None,
            last_error: None,
            first_placed_at: month.map(|_| 1.0),
            updated_at: 1.0,
            due_amount: None,
            total_outstanding: None,
            last_polled_at: None,
            line_updated_at: None,
            line_read_at: None,
        }
    }

    fn hash(v: &Value) -> String {
        v.to_string()
    }

    fn ok(_: &str, _: &Value) -> Option<String> {
        None
    }

    /// The answer of the step that ends it: triage's, or decide's after "map".
    #[derive(Debug, PartialEq)]
    enum V {
        T(Triage),
        D(Decision),
    }

    /// Triages and, when told to map, decides with `mapped`.
    fn run(line: Line, existing: Option<&LoanRow>, mapped: Mapped) -> V {
        match triage(&line, MIN_DPD, existing) {
            Triage::Map => {
                let h = mapped.as_ref().map(hash).unwrap_or_default();
                V::D(decide(existing, MONTH, &mapped, &h, ok))
            }
            t => V::T(t),
        }
    }

    /// Every row of design §1A, and the refusals around it.
    #[test]
    fn every_row_of_design_1a() {
        let sent = payload("9876543210", 5000);
        let placed = loan(LoanState::Placed, Some(MONTH), Some(&sent));
        let last_month = loan(LoanState::Placed, Some("2026-10-01"), Some(&sent));
        let cured_loan = loan(LoanState::Cured, Some(MONTH), Some(&sent));
        let closed_loan = loan(LoanState::Closed, Some(MONTH), Some(&sent));
        let never_placed = loan(LoanState::Rejected, None, None);
        let in_doubt = loan(LoanState::Uploading, Some(MONTH), Some(&sent));
        let mut refused = placed.clone();
        let changed = payload("9000000001", 5000);
        refused.rejected_hash = Some(hash(&changed));
        let mut other_id = payload("9876543210", 5000);
        other_id["loan_id"] = json!("CL2");
        let dropped_key = json!({"loan_id": "CL1",
            "defaults": [{"allocation_month": MONTH, "total_claim_amount": 5000}]});

        let table: Vec<(&str, Line, Option<&LoanRow>, Mapped, V)> = vec![
            (
                "first time overdue: upload",
                overdue(),
                None,
                Ok(sent.clone()),
                V::D(Decision::Upload { new_allocation: false }),
            ),
            (
                "same month, same payload: no call",
                overdue(),
                Some(&placed),
                Ok(sent.clone()),
                V::D(Decision::Unchanged { reactivate: false }),
            ),
            (
                "same month, changed loan-level key: PATCH that key only",
                overdue(),
                Some(&placed),
                Ok(changed.clone()),
                V::D(Decision::Patch(Map::from_iter([(
                    "applicant_contact_number".to_string(),
                    json!("9000000001"),
                )]))),
            ),
            (
                "same month, only the claim changed: frozen, remembered, no call",
                overdue(),
                Some(&placed),
                Ok(payload("9876543210", 4000)),
                V::D(Decision::Remember),
            ),
            (
                "same month, a key dropped by the mapping: remembered, no call",
                overdue(),
                Some(&placed),
                Ok(dropped_key),
                V::D(Decision::Remember),
            ),
            (
                "new month, still overdue: a new allocation",
                overdue(),
                Some(&last_month),
                Ok(sent.clone()),
                V::D(Decision::Upload { new_allocation: true }),
            ),
            (
                "placed, no longer overdue: cured",
                cured(),
                Some(&placed),
                Ok(sent.clone()),
                V::T(Triage::Settle(LoanState::Cured)),
            ),
            (
                "placed, paid off: closed",
                paid_off(),
                Some(&placed),
                Ok(sent.clone()),
                V::T(Triage::Settle(LoanState::Closed)),
            ),
            (
                "cured again: nothing",
                cured(),
                Some(&cured_loan),
                Ok(sent.clone()),
                V::T(Triage::Skip),
            ),
            (
                "cured, then paid off: closed",
                paid_off(),
                Some(&cured_loan),
                Ok(sent.clone()),
                V::T(Triage::Settle(LoanState::Closed)),
            ),
            (
                "cured loan overdue again, same payload: reactivated, no call",
                overdue(),
                Some(&cured_loan),
                Ok(sent.clone()),
                V::D(Decision::Unchanged { reactivate: true }),
            ),
            (
                "closed loan overdue again, same payload: reactivated",
                overdue(),
                Some(&closed_loan),
                Ok(sent.clone()),
                V::D(Decision::Unchanged { reactivate: true }),
            ),
            (
                "not overdue, never seen: nothing",
                cured(),
                None,
                Ok(sent.clone()),
                V::T(Triage::Skip),
            ),
            (
                "not overdue, first upload was rejected: nothing to settle",
                paid_off(),
                Some(&never_placed),
                Ok(sent.clone()),
                V::T(Triage::Skip),
            ),
            (
                "rejected first upload, overdue with a mended payload: upload",
                overdue(),
                Some(&never_placed),
                Ok(sent.clone()),
                V::D(Decision::Upload { new_allocation: false }),
            ),
            (
                "upload in doubt: deferred, whatever the line says",
                overdue(),
                Some(&in_doubt),
                Ok(sent.clone()),
                V::T(Triage::Defer),
            ),
            (
                "upload in doubt, line cured: still deferred",
                cured(),
                Some(&in_doubt),
                Ok(sent.clone()),
                V::T(Triage::Defer),
            ),
            (
                "mapping failed: rejected with its reason",
                overdue(),
                None,
                Err("mapping of `x` failed".into()),
                V::D(Decision::Reject("mapping of `x` failed".into())),
            ),
            (
                "the payload Credgenics refused, again: not resent",
                overdue(),
                Some(&refused),
                Ok(changed.clone()),
                V::D(Decision::AlreadyRefused),
            ),
        ];
        for (row, line, existing, mapped, want) in table {
            assert_eq!(run(line, existing, mapped), want, "{row}");
        }
        // A changed loan_id for a placed borrower-program is refused, naming both.
        match run(overdue(), Some(&placed), Ok(other_id)) {
            V::D(Decision::Reject(r)) => assert!(r.contains("`CL2`") && r.contains("`CL1`"), "{r}"),
            d => panic!("{d:?}"),
        }
        // Preflight's refusal is the reason, and nothing is decided past it.
        let h = hash(&sent);
        let mapped: Mapped = Ok(sent.clone());
        let d = decide(None, MONTH, &mapped, &h, |id, _| {
            Some(format!("{id}: Invalid Mobile numbers"))
        });
        assert_eq!(d, Decision::Reject("CL1: Invalid Mobile numbers".into()));
    }

    #[test]
    fn overdue_needs_both_dpd_and_dues() {
        let l = |dpd, due| Line {
            dpd,
            due_amount: due,
            total_outstanding: d("1"),
        };
        assert!(l(1, d("0.01")).is_overdue(1));
        assert!(!l(0, d("100")).is_overdue(1));
        assert!(!l(30, d("0")).is_overdue(1));
        assert!(!l(5, d("100")).is_overdue(6));
    }
}
