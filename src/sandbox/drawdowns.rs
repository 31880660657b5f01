//! Credit-line drawdowns in the fake Crego LMS (issue: credit-line mode): a borrower-program — the
//! line, the `account` of its records — holds several drawdowns, loans and topups, each one
//! Credgenics transaction. The Crego documents name "List Loans" and "List Topups" but give no
//! shape, so the one served here (`GET /v1/lms/loans/`, `/v1/lms/topups/`) is assumed:
//! `{id, ref_id, kind, account, amount, due_amount, total_outstanding, dpd, date, created_at,
//! updated_at}`.
//!
//! A line with drawdowns is derived from them (its dues, outstanding, dpd and due-loan count are
//! theirs summed), and a repayment booked on it is spread over them as an LMS would: the
//! drawdowns the record names, else the overdue ones, oldest disbursal first. Lines without
//! drawdowns keep the plain line arithmetic of [`SandboxState::apply_repayment_to_line`].

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::state::SandboxState;
use crate::money::{from_json, to_json};

/// An amount member of a drawdown (absent or unreadable counts as nothing).
fn amount_of(d: &Value, key: &str) -> Decimal {
    from_json(&d[key]).unwrap_or_default()
}

/// Oldest disbursal first, then by id: the order drawdowns are listed and repaid in (the id only
/// breaks ties between drawdowns of the same date, so the order never depends on insertion).
fn by_age(a: &Value, b: &Value) -> Ordering {
    let date = |d: &Value| d["date"].as_f64().unwrap_or(0.0);
    date(a)
        .total_cmp(&date(b))
        .then_with(|| a["id"].as_str().cmp(&b["id"].as_str()))
}

/// The drawdown ids a record names: its `loans[]` and its `topup` (ids, or objects with an `id`,
/// since a tenant may expand links).
fn named_drawdowns(record: &Value) -> Vec<String> {
    let id = |v: &Value| v.as_str().or_else(|| v["id"].as_str()).map(str::to_string);
    let mut ids: Vec<String> = record["loans"]
        .as_array()
        .map(|a| a.iter().filter_map(id).collect())
        .unwrap_or_default();
    ids.extend(id(&record["topup"]));
    ids
}

impl SandboxState {
    /// Disburses a drawdown on `account` (a borrower-program id) and derives the line from its
    /// drawdowns again, which bumps the line into the change stream. `kind` is `"loan"` or
    /// `"topup"` (anything else is a test's mistake and panics); `date` is the disbursal, epoch
    /// seconds. An unknown account still gets the drawdown listed, with no line to move.
    // The brief fixes this signature (one argument per member of the assumed shape).
    #[allow(clippy::too_many_arguments)]
    pub fn add_drawdown(
        &mut self,
        account: &str,
        kind: &str,
        amount: Decimal,
        due: Decimal,
        outstanding: Decimal,
        dpd: i64,
        date: f64,
    ) -> Value {
        let (prefix, tag) = match kind {
            "loan" => (0x10a4_u32, "LN"),
            "topup" => (0x70b0_u32, "TU"),
            _ => panic!("a drawdown is a loan or a topup, not {kind:?}"),
        };
        let serial = self.drawdown_serials.entry(kind.to_string()).or_default();
        *serial += 1;
        let serial = *serial;
        let stamp = self.stamp();
        let drawdown = json!({
            "id": format!("{prefix:08x}-0000-4000-8000-{serial:012x}"),
            "ref_id": format!("{tag}{serial:06}"),
            "kind": kind,
            "account": account,
            "amount": to_json(amount),
            "due_amount": to_json(due),
            "total_outstanding": to_json(outstanding),
            "dpd": dpd,
            "date": date,
            "created_at": stamp,
            "updated_at": stamp,
        });
        self.drawdowns
            .entry(account.to_string())
            .or_default()
            .push(drawdown.clone());
        self.recompute_line(account);
        drawdown
    }

    /// Changes one drawdown of `account` as the LMS would (by its `id`, or its `ref_id`): applies
    /// `f`, bumps its `updated_at` and derives the line again. False when there is no such
    /// drawdown.
    pub fn update_drawdown(&mut self, account: &str, drawdown_id: &str, f: impl FnOnce(&mut Value)) -> bool {
        let Some(i) = self.drawdowns.get(account).and_then(|ds| {
            ds.iter()
                .position(|d| d["id"] == drawdown_id || d["ref_id"] == drawdown_id)
        }) else {
            return false;
        };
        let stamp = self.stamp();
        let d = &mut self.drawdowns.get_mut(account).expect("found above")[i];
        f(d);
        d["updated_at"] = json!(stamp);
        self.recompute_line(account);
        true
    }

    /// `account`'s drawdowns of `kind`, oldest disbursal first (what List Loans / List Topups
    /// serve).
    pub fn listed_drawdowns(&self, account: &str, kind: &str) -> Vec<&Value> {
        let mut listed: Vec<&Value> = self
            .drawdowns
            .get(account)
            .into_iter()
            .flatten()
            .filter(|d| d["kind"] == kind)
            .collect();
        listed.sort_by(|a, b| by_age(a, b));
        listed
    }

    /// A repayment as the lender's LMS books it on a credit line: like
    /// [`SandboxState::add_repayment`], naming the drawdowns it pays (`loans[]` ids and `topup`, the
    /// keys the documented record has).
    pub fn add_line_repayment(
        &mut self,
        account: &str,
        amount: Decimal,
        utr: &str,
        loans: &[&str],
        topup: Option<&str>,
    ) -> Value {
        let mut record = self.repayment_record(account, amount, utr);
        record["loans"] = json!(loans);
        record["topup"] = topup.map_or(Value::Null, |t| json!(t));
        self.add_record(record)
    }

    /// Where a booked repayment lands: spread over the line's drawdowns when it has any, else on
    /// the line itself as before.
    pub(crate) fn apply_repayment(&mut self, account: &str, amount: Decimal, record_id: &str) {
        if self.drawdowns.get(account).is_none_or(Vec::is_empty) {
            self.apply_repayment_to_line(account, amount);
        } else {
            self.apply_repayment_to_drawdowns(account, amount, record_id);
        }
    }

    /// Spreads a repayment over `account`'s drawdowns: those the record names (else those with a
    /// due), oldest disbursal first, each taking at most its due; what is left after every due is
    /// paid lowers the outstanding of the newest of them. Then the line is derived again.
    fn apply_repayment_to_drawdowns(&mut self, account: &str, amount: Decimal, record_id: &str) {
        let named = self.records.get(record_id).map(named_drawdowns).unwrap_or_default();
        let ds = self.drawdowns.get(account).map(Vec::as_slice).unwrap_or_default();
        let pick = |keep: &dyn Fn(&Value) -> bool| -> Vec<usize> { (0..ds.len()).filter(|&i| keep(&ds[i])).collect() };
        let mut order = pick(&|d| named.iter().any(|n| d["id"] == n.as_str()));
        // A record whose named drawdowns are none of this line's is applied as one naming none:
        // an LMS does not refuse money already received; it settles the oldest dues.
        if order.is_empty() {
            order = pick(&|d| amount_of(d, "due_amount") > Decimal::ZERO);
        }
        // Nothing due at all: the money prepays what is outstanding.
        if order.is_empty() {
            order = pick(&|d| amount_of(d, "total_outstanding") > Decimal::ZERO);
        }
        order.sort_by(|&a, &b| by_age(&ds[a], &ds[b]));
        let stamp = self.stamp();
        let ds = self.drawdowns.get_mut(account).expect("checked by apply_repayment");
        let mut left = amount;
        let mut touched = vec![false; ds.len()];
        for &i in &order {
            let share = left.min(amount_of(&ds[i], "due_amount"));
            if share > Decimal::ZERO {
                lower(&mut ds[i], "due_amount", share);
                lower(&mut ds[i], "total_outstanding", share);
                left -= share;
                touched[i] = true;
            }
        }
        if left > Decimal::ZERO
            && let Some(&last) = order.last()
        {
            // Beyond the outstanding too, the excess is not modelled: no drawdown goes negative.
            lower(&mut ds[last], "total_outstanding", left);
            touched[last] = true;
        }
        for (d, _) in ds.iter_mut().zip(&touched).filter(|(_, t)| **t) {
            if amount_of(d, "due_amount").is_zero() {
                d["dpd"] = json!(0);
            }
            d["updated_at"] = json!(stamp);
        }
        self.recompute_line(account);
    }

    /// Derives `account`'s line detail from its drawdowns and bumps it into the change stream.
    /// A drawdown carries one due figure, so the line takes it all as principal (keeping the
    /// upload's `expected_emi`, principal plus interest due, equal to its `due_amount`).
    pub(crate) fn recompute_line(&mut self, account: &str) -> bool {
        let ds = self.drawdowns.get(account).map(Vec::as_slice).unwrap_or_default();
        let sum = |key: &str| ds.iter().map(|d| amount_of(d, key)).sum::<Decimal>();
        let (due, outstanding, disbursed) = (sum("due_amount"), sum("total_outstanding"), sum("amount"));
        let overdue: Vec<&Value> = ds
            .iter()
            .filter(|d| amount_of(d, "due_amount") > Decimal::ZERO)
            .collect();
        let dpd = overdue.iter().filter_map(|d| d["dpd"].as_i64()).max().unwrap_or(0);
        let due_loans = overdue.len();
        let topups = ds.iter().filter(|d| d["kind"] == "topup").count();
        self.update_line(account, |ld| {
            ld["due_amount"] = to_json(due);
            ld["total_outstanding"] = to_json(outstanding);
            ld["dpd"] = json!(dpd);
            ld["due_loan_count"] = json!(due_loans);
            let peak = ld["peak_dpd"].as_i64().unwrap_or(0).max(dpd);
            ld["peak_dpd"] = json!(peak);
            ld["npa_category"] = json!(if dpd > 90 { "NPA" } else { "STD" });
            ld["total_due_principal"] = to_json(due);
            ld["principal_outstanding"] = to_json(outstanding);
            for key in [
                "total_due_interest",
                "total_due_penal",
                "interest_outstanding",
                "penal_outstanding",
            ] {
                ld[key] = json!(0);
            }
            ld["total_disbursed_amount"] = to_json(disbursed);
            ld["total_topup_count"] = json!(topups);
            let operative = from_json(&ld["operative_line_amount"]).unwrap_or_default();
            ld["active_line_amount"] = to_json((operative - outstanding).max(Decimal::ZERO));
        })
    }
}

/// Lowers an amount member by `by`, never below zero.
fn lower(d: &mut Value, key: &str, by: Decimal) {
    d[key] = to_json((amount_of(d, key) - by).max(Decimal::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::seed::seed_credit_line;

    fn d(n: i64) -> Decimal {
        Decimal::from(n)
    }

    fn line(s: &SandboxState, bp: &str) -> Value {
        let (lead, i) = s.find_program(bp).expect("seeded line");
        s.programs[&lead][i]["line_detail"].clone()
    }

    fn drawdown<'a>(s: &'a SandboxState, bp: &str, ref_id: &str) -> &'a Value {
        s.drawdowns[bp]
            .iter()
            .find(|d| d["ref_id"] == ref_id)
            .expect("drawdown")
    }

    fn money(v: &Value, key: &str) -> Decimal {
        from_json(&v[key]).unwrap_or_else(|| panic!("{key} in {v}"))
    }

    /// The line is its drawdowns summed, whatever happened to them.
    fn assert_line_is_its_drawdowns(s: &SandboxState, bp: &str) {
        let ld = line(s, bp);
        let ds = &s.drawdowns[bp];
        let sum = |k: &str| ds.iter().map(|d| money(d, k)).sum::<Decimal>();
        assert_eq!(money(&ld, "due_amount"), sum("due_amount"));
        assert_eq!(money(&ld, "total_outstanding"), sum("total_outstanding"));
        let overdue: Vec<&Value> = ds.iter().filter(|d| money(d, "due_amount") > Decimal::ZERO).collect();
        assert_eq!(ld["due_loan_count"], overdue.len());
        let dpd = overdue.iter().map(|d| d["dpd"].as_i64().unwrap()).max().unwrap_or(0);
        assert_eq!(ld["dpd"], dpd);
        // The change stream indexes the line under its current stamp.
        let key = SandboxState::index_key(ld["updated_at"].as_f64().unwrap(), ld["id"].as_str().unwrap());
        assert!(s.line_index.contains_key(&key));
    }

    #[test]
    fn a_drawdown_moves_its_line() {
        let mut s = SandboxState::default();
        let (_, bp, customer, refs) = seed_credit_line(&mut s, 3, &[]);
        assert_eq!((customer.as_str(), refs.len()), ("CL000003", 0));
        assert_eq!(money(&line(&s, &bp), "due_amount"), Decimal::ZERO);
        let before = line(&s, &bp)["updated_at"].as_f64().unwrap();
        let now = crate::clock::wall_secs();
        let l1 = s.add_drawdown(&bp, "loan", d(1000), d(100), d(1000), 10, now - 20.0 * 86400.0);
        let t1 = s.add_drawdown(&bp, "topup", d(500), d(50), d(500), 40, now - 10.0 * 86400.0);
        // Not due: its dpd does not count.
        s.add_drawdown(&bp, "loan", d(300), d(0), d(300), 99, now);
        assert_eq!(
            (l1["ref_id"].as_str(), t1["ref_id"].as_str()),
            (Some("LN000001"), Some("TU000001"))
        );
        assert_eq!(l1["account"], bp.as_str());
        let ld = line(&s, &bp);
        assert_eq!(money(&ld, "due_amount"), d(150));
        assert_eq!(money(&ld, "total_outstanding"), d(1800));
        assert_eq!(money(&ld, "total_disbursed_amount"), d(1800));
        assert_eq!((ld["dpd"].as_i64(), ld["due_loan_count"].as_i64()), (Some(40), Some(2)));
        assert_eq!(ld["total_topup_count"], 1);
        assert!(ld["updated_at"].as_f64().unwrap() > before);
        assert_line_is_its_drawdowns(&s, &bp);

        assert!(s.update_drawdown(&bp, "TU000001", |t| t["due_amount"] = json!(0)));
        assert!(!s.update_drawdown(&bp, "TU000009", |_| {}));
        assert_eq!(line(&s, &bp)["dpd"], 10);
        assert_line_is_its_drawdowns(&s, &bp);
        let listed: Vec<&str> = s
            .listed_drawdowns(&bp, "loan")
            .iter()
            .map(|d| d["ref_id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["LN000001", "LN000002"]);
        assert!(s.listed_drawdowns("nobody", "loan").is_empty());
    }

    #[test]
    fn a_record_naming_two_drawdowns_pays_the_older_first_and_the_rest_to_the_newer() {
        let mut s = SandboxState::default();
        // Another line seeded first: the credit line must still index right.
        seed_credit_line(&mut s, 0, &[("loan", d(100), d(10), 5, 1.0)]);
        let (_, bp, _, refs) = seed_credit_line(
            &mut s,
            1,
            &[
                ("loan", d(1000), d(80), 20, 10.0),   // newer
                ("topup", d(1000), d(100), 45, 30.0), // older
                ("loan", d(700), d(70), 60, 60.0),    // oldest, not named
            ],
        );
        let id = |r: &str| drawdown(&s, &bp, r)["id"].as_str().unwrap().to_string();
        let (newer, older) = (id(&refs[0]), id(&refs[1]));
        s.add_line_repayment(&bp, d(130), "UTR-1", &[&newer], Some(&older));
        let (o, n) = (drawdown(&s, &bp, &refs[1]), drawdown(&s, &bp, &refs[0]));
        assert_eq!((money(o, "due_amount"), money(o, "total_outstanding")), (d(0), d(900)));
        assert_eq!(o["dpd"], 0);
        assert_eq!((money(n, "due_amount"), money(n, "total_outstanding")), (d(50), d(970)));
        assert_eq!(n["dpd"], 20);
        let untouched = drawdown(&s, &bp, &refs[2]);
        assert_eq!(money(untouched, "due_amount"), d(70));
        assert_line_is_its_drawdowns(&s, &bp);
        assert_eq!(line(&s, &bp)["dpd"], 60);

        // Past every named due: the rest lowers the last one's outstanding, never below zero.
        s.add_line_repayment(&bp, d(200), "UTR-2", &[&newer, &older], None);
        let n = drawdown(&s, &bp, &refs[0]);
        assert_eq!((money(n, "due_amount"), money(n, "total_outstanding")), (d(0), d(770)));
        assert_eq!(n["dpd"], 0);
        s.add_line_repayment(&bp, d(5000), "UTR-3", &[&newer], None);
        assert_eq!(money(drawdown(&s, &bp, &refs[0]), "total_outstanding"), d(0));
        assert_eq!(money(drawdown(&s, &bp, &refs[2]), "due_amount"), d(70));
        assert_line_is_its_drawdowns(&s, &bp);
        assert_eq!(drawdown(&s, &bp, &refs[2])["dpd"], 60);
    }

    #[test]
    fn a_record_naming_none_pays_the_oldest_overdue_first() {
        let mut s = SandboxState::default();
        let (_, bp, _, refs) = seed_credit_line(
            &mut s,
            2,
            &[
                ("loan", d(1000), d(0), 0, 90.0), // oldest, nothing due
                ("loan", d(1000), d(60), 30, 30.0),
                ("topup", d(400), d(40), 5, 5.0),
            ],
        );
        let updated = |s: &SandboxState, r: &str| drawdown(s, &bp, r)["updated_at"].as_f64().unwrap();
        let untouched_at = updated(&s, &refs[0]);
        // As flow B posts it: a plain record, no loans[].
        let r = s.add_repayment(&bp, d(70), "UTR-9");
        assert_eq!(r["loans"], json!([]));
        assert_eq!(money(drawdown(&s, &bp, &refs[1]), "due_amount"), d(0));
        assert_eq!(drawdown(&s, &bp, &refs[1])["dpd"], 0);
        assert_eq!(money(drawdown(&s, &bp, &refs[2]), "due_amount"), d(30));
        assert_eq!(money(drawdown(&s, &bp, &refs[2]), "total_outstanding"), d(390));
        assert_eq!(money(drawdown(&s, &bp, &refs[0]), "total_outstanding"), d(1000));
        assert_eq!(updated(&s, &refs[0]), untouched_at);
        assert_line_is_its_drawdowns(&s, &bp);
        assert_eq!(
            (line(&s, &bp)["dpd"].as_i64(), line(&s, &bp)["due_loan_count"].as_i64()),
            (Some(5), Some(1))
        );
    }

    #[test]
    fn a_line_without_drawdowns_keeps_the_plain_arithmetic() {
        let mut s = SandboxState::default();
        let (_, bp, _, _) = seed_credit_line(&mut s, 4, &[]);
        s.update_line(&bp, |ld| {
            ld["due_amount"] = json!(100);
            ld["total_outstanding"] = json!(500);
            ld["dpd"] = json!(20);
            ld["total_due_interest"] = json!(7);
        });
        s.add_repayment(&bp, d(30), "UTR-A");
        let ld = line(&s, &bp);
        assert_eq!(
            (money(&ld, "due_amount"), money(&ld, "total_outstanding")),
            (d(70), d(470))
        );
        assert_eq!(
            (ld["dpd"].as_i64(), ld["total_due_interest"].as_i64()),
            (Some(20), Some(7))
        );
        s.add_repayment(&bp, d(100), "UTR-B");
        let ld = line(&s, &bp);
        assert_eq!(
            (money(&ld, "due_amount"), money(&ld, "total_outstanding")),
            (d(0), d(370))
        );
        assert_eq!(ld["dpd"], 0);
        assert!(!s.drawdowns.contains_key(&bp));
    }

    #[test]
    fn seeding_a_line_again_replaces_it_and_its_drawdowns() {
        let mut s = SandboxState::default();
        let (_, bp, _, _) = seed_credit_line(&mut s, 5, &[("loan", d(100), d(10), 3, 2.0)]);
        let (_, again, _, refs) = seed_credit_line(&mut s, 5, &[("topup", d(200), d(20), 4, 1.0)]);
        assert_eq!(bp, again);
        assert_eq!(s.drawdowns[&bp].len(), 1);
        assert_eq!(refs, ["TU000001"]);
        assert_eq!(s.line_index.len(), 1);
        assert_line_is_its_drawdowns(&s, &bp);
    }

    #[tokio::test]
    async fn the_list_endpoints_serve_one_lines_drawdowns_by_kind_oldest_first() {
        use crate::sandbox::{Sandbox, SandboxConfig};
        let sb = Sandbox::start_local(SandboxConfig::default()).await.unwrap();
        let (_, bp, _, _) = seed_credit_line(
            &mut sb.state(),
            900,
            &[
                ("loan", d(100), d(10), 3, 2.0),
                ("topup", d(50), d(5), 1, 1.0),
                ("loan", d(70), d(7), 9, 9.0),
            ],
        );
        let get = |path: String| {
            let req = reqwest::Client::new()
                .get(format!("{}{path}", sb.crego_url()))
                .bearer_auth(&sb.config().crego_token);
            async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (status, page) = get(format!("/v1/lms/loans/?account={bp}&page_size=1&page=2")).await;
        assert_eq!(
            (status, page["count"].as_u64(), page["has_next"].as_bool()),
            (200, Some(2), Some(false))
        );
        assert_eq!(page["results"][0]["ref_id"], "LN000001");
        let (_, page) = get(format!("/v1/lms/loans/?account={bp}")).await;
        assert_eq!(page["results"][0]["ref_id"], "LN000002");
        let (_, page) = get(format!("/v1/lms/topups/?account={bp}&updated_at__gte=x")).await;
        assert_eq!(
            (page["count"].as_u64(), &page["results"][0]["kind"]),
            (Some(1), &json!("topup"))
        );
        let (_, page) = get("/v1/lms/topups/?account=nobody".into()).await;
        assert_eq!(page["count"], 0);
        let (status, body) = get("/v1/lms/loans/".into()).await;
        assert_eq!((status, body), (400, json!({"detail": "account is required"})));
    }
}
