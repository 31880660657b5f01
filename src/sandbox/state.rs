//! Everything both fakes hold, and the changes an LMS or Credgenics would make to it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::realism;
use super::spec::*;

/// A loan as the fake Credgenics holds it.
#[derive(Debug, Clone, Default)]
pub struct CgLoan {
    pub details: serde_json::Map<String, Value>,
    /// One entry per allocation month, in upload order.
    pub defaults: Vec<Value>,
    /// How many times each allocation month was uploaded (a second upload is a defect).
    pub uploads_per_month: BTreeMap<String, u32>,
    pub payment_history: Vec<Value>,
}

/// Everything both fakes hold.
#[derive(Debug, Default)]
pub struct SandboxState {
    pub leads: BTreeMap<String, Value>,
    /// lead id → borrower-program entries (documented `/programs/` items).
    pub programs: BTreeMap<String, Vec<Value>>,
    /// (updated_at in µs, line detail id) → (lead id, index into `programs[lead]`): the change
    /// stream's order.
    pub line_index: BTreeMap<(i64, String), (String, usize)>,
    pub cg_loans: BTreeMap<String, CgLoan>,
    /// A credit-line tenant's customers and transactions.
    pub credit_line: super::credit_line_book::ClBook,
    /// LMS records by id, and their change-stream order (updated_at in µs, id).
    pub records: BTreeMap<String, Value>,
    pub record_index: BTreeMap<(i64, String), ()>,
    /// A credit line's drawdowns (loans and topups) by borrower-program id, the line's `account`
    /// (see [`super::drawdowns`]); a line that has any is derived from them.
    pub drawdowns: BTreeMap<String, Vec<Value>>,
    /// The last serial given to a drawdown, per kind: ids and ref_ids are counted, not random,
    /// so a seeded book is the same on every run.
    pub(crate) drawdown_serials: BTreeMap<String, u64>,
    /// Where the fake Credgenics posts `payment` webhooks, with the token it sends.
    pub webhook_target: Option<(String, String)>,
    /// Every webhook emitted: (body, HTTP status or 0 when it could not be delivered).
    pub webhooks: Vec<(Value, u16)>,
    pub(crate) next_payment_id: u64,
    pub requests: Vec<RecordedRequest>,
    pub stats: BTreeMap<&'static str, ServedStats>,
    /// borrower-program id → (lead id, index into `programs[lead]`).
    pub(crate) program_index: std::collections::HashMap<String, (String, usize)>,
    pub fail_next: BTreeMap<&'static str, VecDeque<InjectedFailure>>,
    /// Exchanged tokens: token → (api, expiry); refresh tokens → api; exchanges per api.
    pub tokens: BTreeMap<String, (&'static str, Instant)>,
    pub refresh_tokens: BTreeMap<String, &'static str>,
    pub token_exchanges: BTreeMap<&'static str, u64>,
    /// Random faults per API, and their generator (seeded: the same seed, the same faults).
    pub faults: BTreeMap<&'static str, FaultSpec>,
    pub(crate) fault_rng: BTreeMap<&'static str, rand::rngs::StdRng>,
    /// Added latency per API (tests of slow runs).
    pub delay: BTreeMap<&'static str, Duration>,
    pub(crate) windows: BTreeMap<&'static str, VecDeque<Instant>>,
    pub(crate) last_stamp: f64,
    pub(crate) realism: Option<realism::RealismState>,
    /// Where injected 3xx answers point (`Sandbox::redirect_next`).
    pub redirect_to: Option<String>,
    /// A misbehaving line-details list: the first page again and again with `has_next: true`.
    pub endless_pages: bool,
    /// Bytes of padding added to every line-details page (an oversized answer).
    pub page_padding: usize,
}

impl SandboxState {
    /// A strictly increasing "now" for `updated_at` values.
    pub fn stamp(&mut self) -> f64 {
        let now = (crate::clock::wall_secs() * 1000.0).round() / 1000.0;
        self.last_stamp = if now > self.last_stamp {
            now
        } else {
            self.last_stamp + 0.001
        };
        self.last_stamp
    }

    pub(crate) fn index_key(updated_at: f64, id: &str) -> (i64, String) {
        ((updated_at * 1_000_000.0).round() as i64, id.to_string())
    }

    /// Rebuilds the change-stream index (after seeding).
    pub fn reindex(&mut self) {
        self.line_index.clear();
        self.program_index.clear();
        for (lead, progs) in &self.programs {
            for (i, p) in progs.iter().enumerate() {
                if let Some(id) = p["id"].as_str() {
                    self.program_index.insert(id.to_string(), (lead.clone(), i));
                }
                let ld = &p["line_detail"];
                if let (Some(at), Some(id)) = (ld["updated_at"].as_f64(), ld["id"].as_str()) {
                    self.line_index.insert(Self::index_key(at, id), (lead.clone(), i));
                }
            }
        }
        self.last_stamp = self
            .line_index
            .keys()
            .next_back()
            .map(|(us, _)| *us as f64 / 1e6)
            .unwrap_or(0.0);
    }

    /// Changes one borrower-program's line detail as an end-of-day run would: applies `f`, then
    /// bumps `updated_at` so the change stream shows it.
    pub fn update_line(&mut self, borrower_program_id: &str, f: impl FnOnce(&mut Value)) -> bool {
        let Some((lead, i)) = self.find_program(borrower_program_id) else {
            return false;
        };
        let stamp = self.stamp();
        let entry = &mut self.programs.get_mut(&lead).expect("indexed lead")[i];
        let ld = &mut entry["line_detail"];
        let old_key = Self::index_key(
            ld["updated_at"].as_f64().unwrap_or(0.0),
            ld["id"].as_str().unwrap_or(""),
        );
        f(ld);
        ld["updated_at"] = serde_json::json!(stamp);
        let new_key = Self::index_key(stamp, ld["id"].as_str().unwrap_or(""));
        self.line_index.remove(&old_key);
        self.line_index.insert(new_key, (lead, i));
        true
    }

    /// Books an LMS record (as the lender's LMS would) and applies a repayment to the line: its
    /// due and outstanding amounts fall, and the line shows up in the change stream.
    pub fn add_record(&mut self, mut record: Value) -> Value {
        let stamp = self.stamp();
        let n = self.records.len();
        let id = record["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("rec-{n:08}-{}", (stamp * 1000.0) as i64));
        record["id"] = Value::String(id.clone());
        record["created_at"] = serde_json::json!(stamp);
        record["updated_at"] = serde_json::json!(stamp);
        if record.get("ref_id").is_none_or(Value::is_null) {
            record["ref_id"] = Value::String(format!("REC{n:06}"));
        }
        self.record_index.insert(Self::index_key(stamp, &id), ());
        self.records.insert(id, record.clone());
        if record["type"] == "repayment"
            && let (Some(account), Some(amount)) =
                (record["account"].as_str(), crate::money::from_json(&record["amount"]))
        {
            let id = record["id"].as_str().unwrap_or_default().to_string();
            self.move_line_after_repayment(account, amount, &id);
            return self.records[&id].clone();
        }
        record
    }

    /// A repayment's effect on its line: due and outstanding amounts fall, and the line shows up
    /// in the change stream.
    pub(crate) fn apply_repayment_to_line(&mut self, account: &str, amount: rust_decimal::Decimal) {
        self.update_line(account, |ld| {
            for key in ["due_amount", "total_outstanding"] {
                let v = crate::money::from_json(&ld[key]).unwrap_or_default();
                ld[key] = crate::money::to_json((v - amount).max(rust_decimal::Decimal::ZERO));
            }
            if crate::money::from_json(&ld["due_amount"]).unwrap_or_default().is_zero() {
                ld["dpd"] = serde_json::json!(0);
            }
        });
    }

    /// A repayment booked in the LMS on a borrower-program (flow C's input), from the documented
    /// record example.
    pub fn add_repayment(&mut self, borrower_program_id: &str, amount: rust_decimal::Decimal, utr: &str) -> Value {
        let r = self.repayment_record(borrower_program_id, amount, utr);
        self.add_record(r)
    }

    /// The record [`Self::add_repayment`] books, not booked yet (a credit-line repayment names
    /// its drawdowns first).
    pub(crate) fn repayment_record(
        &mut self,
        borrower_program_id: &str,
        amount: rust_decimal::Decimal,
        utr: &str,
    ) -> Value {
        let mut r: Value = serde_json::from_str(RECORD_EXAMPLE).expect("record fixture parses");
        let now = self.stamp();
        r.as_object_mut().expect("record is an object").remove("id");
        r["account"] = Value::String(borrower_program_id.to_string());
        r["amount"] = crate::money::to_json(amount);
        r["received_amount"] = crate::money::to_json(amount);
        r["utr"] = Value::String(utr.to_string());
        r["status"] = Value::String("processed".into());
        r["date"] = serde_json::json!(self.repayment_date(borrower_program_id, now));
        r["bank_date"] = serde_json::json!(now);
        r["settled_at"] = serde_json::json!(now);
        r["remark"] = Value::String(String::new());
        r.as_object_mut().expect("record is an object").remove("ref_id");
        r
    }

    /// A recovery made by a collection agent at Credgenics (flow B's input): recorded in the
    /// loan's payment history and announced by webhook. `None` when the loan is unknown.
    pub fn add_agent_collection(
        &mut self,
        loan_id: &str,
        amount: rust_decimal::Decimal,
        reference: &str,
    ) -> Option<Value> {
        let month = self.cg_loans.get(loan_id)?.defaults.last()?["allocation_month"].clone();
        let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::get("Asia/Kolkata").ok()?);
        let payment = serde_json::json!({
            "amount_recovered": crate::money::to_json(amount),
            "final_status": "Partially Recovered",
            "recovery_method": "Field Collection",
            "payment_method": "Cash",
            "payment_mode": "cash",
            "payment_reference_number": reference,
            "recovery_date": now.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            "allocation_month": month,
            "author": "agent@collections.example",
        });
        Some(self.record_payment(loan_id, payment))
    }

    /// Appends a payment entry to a loan's history (numbering it) and queues its webhook.
    pub(crate) fn record_payment(&mut self, loan_id: &str, mut payment: Value) -> Value {
        self.next_payment_id += 1;
        payment["payment_id"] = serde_json::json!(self.next_payment_id);
        if payment.get("created").is_none() {
            payment["created"] = Value::String(jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string());
        }
        let loan = self.cg_loans.get_mut(loan_id).expect("payment on a known loan");
        loan.payment_history.push(payment.clone());
        payment
    }

    pub fn find_program(&self, borrower_program_id: &str) -> Option<(String, usize)> {
        self.program_index.get(borrower_program_id).cloned()
    }

    /// Borrower-program entries whose line is overdue by the daemon's default rule.
    pub fn overdue_programs(&self, min_dpd: i64) -> Vec<Value> {
        self.programs
            .values()
            .flatten()
            .filter(|p| {
                let ld = &p["line_detail"];
                ld["dpd"].as_i64().unwrap_or(0) >= min_dpd && ld["due_amount"].as_f64().unwrap_or(0.0) > 0.0
            })
            .cloned()
            .collect()
    }

    /// Takes an injected failure or a rate-limit refusal for this request, if any.
    pub(crate) fn gate(&mut self, api: &'static str, target: &str, rps: Option<u32>) -> Option<InjectedFailure> {
        // The LMS makes the line moves whose time has come before it answers anything.
        self.apply_due_moves(false);
        if let Some(queue) = self.fail_next.get_mut(api)
            && let Some(i) = queue
                .iter()
                .position(|f| f.path_prefix.as_deref().is_none_or(|p| target.starts_with(p)))
        {
            return queue.remove(i);
        }
        if let Some(f) = self.random_fault(api) {
            return Some(f);
        }
        let limit = rps?;
        let now = Instant::now();
        let window = self.windows.entry(api).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return Some(InjectedFailure {
                status: 429,
                retry_after: Some(1),
                path_prefix: None,
                after_serving: false,
                kind: FaultKind::Status,
            });
        }
        window.push_back(now);
        None
    }
}

impl SandboxState {
    /// Draws this request's random fault, if the API has a fault spec and the dice say so.
    fn random_fault(&mut self, api: &'static str) -> Option<InjectedFailure> {
        use rand::{Rng, SeedableRng};
        let spec = self.faults.get(api)?.clone();
        // One generator per API: the same seed gives the same faults on that API whatever the
        // other API is asked meanwhile.
        let rng = self
            .fault_rng
            .entry(api)
            .or_insert_with(|| rand::rngs::StdRng::seed_from_u64(42));
        let x: f64 = rng.random();
        let after = rng.random_bool(0.5);
        let mut edge = 0.0;
        let mut pick = |p: f64| {
            edge += p;
            x < edge
        };
        let (status, retry_after, after_serving, kind) = if pick(spec.p_500) {
            (500, None, after, FaultKind::Status)
        } else if pick(spec.p_429) {
            (429, Some(1), false, FaultKind::Status)
        } else if pick(spec.p_stall) {
            (0, None, after, FaultKind::Stall(spec.stall))
        } else if pick(spec.p_reset) {
            (0, None, true, FaultKind::Reset)
        } else if pick(spec.p_malformed) {
            (200, None, true, FaultKind::Malformed)
        } else {
            return None;
        };
        Some(InjectedFailure {
            status,
            retry_after,
            path_prefix: None,
            after_serving,
            kind,
        })
    }

    /// Issues a token for `api` (and a refresh token when asked), valid `ttl` seconds; a
    /// Credgenics answer states the lifetime as `tenant` does.
    pub(crate) fn issue_token(&mut self, api: &'static str, ttl: f64, with_refresh: bool, tenant: &Tenant) -> Value {
        use serde_json::json;
        let n = self.token_exchanges.entry(api).or_default();
        *n += 1;
        let mut token = format!("{api}-token-{n}-{}", self.tokens.len());
        let ttl = if with_refresh || tenant.token_lifetime != TokenLifetime::Unstated {
            ttl
        } else {
            900.0
        };
        if !with_refresh && tenant.token_lifetime == TokenLifetime::JwtExp {
            let exp = (jiff::Timestamp::now().as_second() as f64 + ttl).floor() as i64;
            token = format!(
                "{}.{}.{}",
                base64url(br#"{"alg":"none","typ":"JWT"}"#),
                base64url(json!({"exp": exp, "sub": token}).to_string().as_bytes()),
                base64url(b"sandbox")
            );
        }
        self.tokens
            .insert(token.clone(), (api, Instant::now() + Duration::from_secs_f64(ttl)));
        if with_refresh {
            // Crego's shape: `{access, refresh, expires_in}`.
            let refresh = format!("{api}-refresh-{n}");
            self.refresh_tokens.insert(refresh.clone(), api);
            return json!({"access": token, "refresh": refresh, "expires_in": ttl});
        }
        // Credgenics' documented answer: `api_key`, `expiry` (typed only as a string; here the
        // lifetime in seconds) and `company_details[]`; other tenants state it otherwise.
        let companies: Vec<Value> = tenant
            .companies
            .iter()
            .map(|c| json!({"company_id": c, "company_name": format!("Lender {c}")}))
            .collect();
        let mut answer = json!({"api_key": token, "company_details": companies});
        match tenant.token_lifetime {
            TokenLifetime::Expiry => answer["expiry"] = json!(format!("{ttl}")),
            TokenLifetime::ExpiresIn => answer["expires_in"] = json!(ttl),
            TokenLifetime::JwtExp | TokenLifetime::Unstated => {}
        }
        answer
    }
}

/// Unpadded base64url, for the sandbox's JWTs.
fn base64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
