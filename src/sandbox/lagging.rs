//! The realistic mode's behaviour on the sandbox's state: lines that move after their records,
//! shared dates, items touched while listed, busy token endpoints (see [`super::realism`]).

use std::time::Instant;

use rand::Rng;
use rust_decimal::Decimal;

use super::realism::*;
use super::state::SandboxState;

impl SandboxState {
    /// Books the repayment's effect on its line later (realistic mode: the record stays
    /// unsettled, `settled_at` null, until then), or now.
    pub(crate) fn move_line_after_repayment(&mut self, account: &str, amount: Decimal, record_id: &str) {
        match self.realism.as_mut() {
            Some(r) => {
                let due = Instant::now() + r.spec.line_lag;
                r.pending_moves
                    .push((due, account.to_string(), amount, record_id.to_string()));
                if let Some(rec) = self.records.get_mut(record_id) {
                    rec["settled_at"] = serde_json::Value::Null;
                }
            }
            None => self.settle_repayment(account, amount, record_id),
        }
    }

    /// The LMS applies a repayment: the line's dues fall (on a credit line, through its
    /// drawdowns), and the record is settled at that very instant (`settled_at`, and a newer
    /// `updated_at`, so the records stream shows it again).
    fn settle_repayment(&mut self, account: &str, amount: Decimal, record_id: &str) {
        self.apply_repayment(account, amount, record_id);
        let line_at = self
            .find_program(account)
            .and_then(|(lead, i)| self.programs[&lead][i]["line_detail"]["updated_at"].as_f64());
        if self.realism.is_none() {
            return;
        }
        let stamp = self.stamp();
        let Some(rec) = self.records.get_mut(record_id) else {
            return;
        };
        let old = Self::index_key(rec["updated_at"].as_f64().unwrap_or(0.0), record_id);
        rec["settled_at"] = serde_json::json!(line_at.unwrap_or(stamp));
        rec["updated_at"] = serde_json::json!(stamp);
        self.record_index.remove(&old);
        self.record_index.insert(Self::index_key(stamp, record_id), ());
    }

    /// Makes the line moves whose time has come (all of them with `all`).
    pub(crate) fn apply_due_moves(&mut self, all: bool) {
        let Some(r) = self.realism.as_mut() else { return };
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = r.pending_moves.drain(..).partition(|(at, ..)| all || *at <= now);
        r.pending_moves = later;
        for (_, account, amount, record) in due {
            self.settle_repayment(&account, amount, &record);
        }
    }

    /// Makes now the moves owed to one line.
    fn apply_moves_of(&mut self, account: &str) {
        let Some(r) = self.realism.as_mut() else { return };
        let (mine, rest): (Vec<_>, Vec<_>) = r.pending_moves.drain(..).partition(|(_, a, ..)| a == account);
        r.pending_moves = rest;
        for (_, account, amount, record) in mine {
            self.settle_repayment(&account, amount, &record);
        }
    }

    /// Line moves still to come.
    pub fn pending_line_moves(&self) -> usize {
        self.realism.as_ref().map_or(0, |r| r.pending_moves.len())
    }

    /// Items the realistic mode updated while a stream was being listed.
    pub fn touches(&self) -> u64 {
        self.realism.as_ref().map_or(0, |r| r.touches)
    }

    /// The `date` of a repayment booked now on `account`: shared with the previous one when
    /// booked close after it (realistic mode).
    pub(crate) fn repayment_date(&mut self, account: &str, now: f64) -> f64 {
        let Some(r) = self.realism.as_mut() else { return now };
        let date = match r.last_repayment.get(account) {
            Some((booked, date)) if now - booked <= r.spec.shared_date_within_secs => *date,
            _ => now,
        };
        r.last_repayment.insert(account.to_string(), (now, date));
        date
    }

    /// During a list request for `offset..`: now and then updates one item listed before the
    /// requested page (or the first one, for a first page), as the LMS does while a reader pages.
    pub(crate) fn touch_while_listing(&mut self, listed: Listed, from: &(i64, String), offset: usize) {
        let Some(r) = self.realism.as_mut() else { return };
        if r.rng.random_range(0..100) >= r.spec.touch_pct {
            return;
        }
        let pick = r.rng.random_range(0..offset.max(1));
        match listed {
            Listed::LineDetails => {
                let Some(bp) = self
                    .line_index
                    .range(from.clone()..)
                    .nth(pick)
                    .map(|(_, (lead, i))| self.programs[lead][*i]["id"].as_str().unwrap_or_default().to_string())
                else {
                    return;
                };
                // When the LMS writes a line at all, it writes it whole: the moves it owes that
                // line go with it (a line is never stamped newer than a repayment it does not yet
                // reflect while that repayment is already booked and due to it).
                self.apply_moves_of(&bp);
                self.update_line(&bp, |_| {});
            }
            Listed::Records => {
                let Some(key) = self
                    .record_index
                    .range(from.clone()..)
                    .nth(pick)
                    .map(|(k, _)| k.clone())
                else {
                    return;
                };
                let stamp = self.stamp();
                self.record_index.remove(&key);
                self.record_index.insert(Self::index_key(stamp, &key.1), ());
                if let Some(rec) = self.records.get_mut(&key.1) {
                    rec["updated_at"] = serde_json::json!(stamp);
                }
            }
        }
        // Counted only when an item was actually updated: tests rely on it having happened.
        if let Some(r) = self.realism.as_mut() {
            r.touches += 1;
        }
    }

    /// Whether this token exchange is refused: `Some((status, retry_after))`.
    pub(crate) fn token_refusal(&mut self, api: &'static str) -> Option<(u16, Option<u64>)> {
        let r = self.realism.as_mut()?;
        let n = r.token_requests.entry(api).or_default();
        *n += 1;
        let every = |k: u64| k > 0 && *n % k == 0;
        if every(r.spec.token_429_every) {
            Some((429, Some(1)))
        } else if every(r.spec.token_503_every) {
            Some((503, None))
        } else {
            None
        }
    }
}
