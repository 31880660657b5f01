//! Deterministic seed books: leads and borrower-programs built from the documented `/programs/`
//! example (`fixtures/crego_programs_response.json`), with line details overdue in a given share.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::spec::SeedSpec;
use super::state::SandboxState;

/// The documented `GET /v1/crm/leads/{id}/programs/` example, used as the template of every seed.
pub const PROGRAMS_EXAMPLE: &str = include_str!("../../fixtures/crego_programs_response.json");

const FIRST: &[&str] = &[
    "Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Meera", "Arjun", "Kavya", "Sanjay", "Lakshmi",
];
const LAST: &[&str] = &[
    "Sharma", "Iyer", "Patel", "Reddy", "Gupta", "Nair", "Singh", "Das", "Joshi", "Menon",
];

use crate::money::to_json as num;

fn id(kind: u32, i: usize) -> String {
    format!("{kind:08x}-{:04x}-4000-8000-{i:012x}", (i >> 16) & 0xffff)
}

/// Lead id, borrower-program id and loan id (program `ref_id`) of seed number `i`.
pub fn ids(i: usize) -> (String, String, String) {
    (id(0x1ead, i), id(0xb9, i), format!("CL{i:06}"))
}

/// The first borrower-program of the documented example: every seeded program's starting point.
fn template() -> Value {
    serde_json::from_str::<Vec<Value>>(PROGRAMS_EXAMPLE).expect("fixture parses")[0].clone()
}

/// Fills `state` with `spec.leads` leads, one borrower-program each. `updated_at` of the lines
/// increase with `i`, all in the past.
pub fn seed(state: &mut SandboxState, spec: &SeedSpec) {
    let template = template();
    let mut rng = StdRng::seed_from_u64(spec.rng_seed);
    let now = crate::clock::wall_secs();
    let base = (now - 3600.0).floor();
    for i in 0..spec.leads {
        let (lead_id, bp_id, loan_id) = ids(i);
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let mobile = format!(
            "{}{:09}",
            rng.random_range(6..=9),
            rng.random_range(0..1_000_000_000u64)
        );
        let created = base - 86400.0 * 200.0 + i as f64;
        let updated = base + i as f64 * 0.001;
        let lead = json!({
            "id": lead_id, "ref_id": format!("LD{i:06}"), "name": format!("{first} {last}"),
            "mobile": mobile, "email": format!("{}.{}{}@example.in", first.to_lowercase(), last.to_lowercase(), i),
            "created_at": created, "updated_at": updated,
        });
        let overdue = rng.random_range(0..100) < spec.overdue_pct;
        let approved = Decimal::from(rng.random_range(1..=50) * 10_000);
        let disbursed = approved * Decimal::from(rng.random_range(5..=10)) / Decimal::from(10);
        let paise = if rng.random_bool(0.25) {
            Decimal::new(50, 2)
        } else {
            Decimal::ZERO
        };
        let (dpd, due_principal, due_interest, due_penal) = if overdue {
            let principal = (disbursed / Decimal::from(rng.random_range(4..=12))).round();
            let interest = (principal * Decimal::new(2, 2)).round() + paise;
            (
                rng.random_range(1..=200) as i64,
                principal,
                interest,
                Decimal::from(rng.random_range(0..=5) * 100),
            )
        } else {
            (0, Decimal::ZERO, Decimal::ZERO, Decimal::ZERO)
        };
        let due = due_principal + due_interest + due_penal;
        let principal_outstanding = disbursed.max(due_principal);
        let total_outstanding = principal_outstanding + due_interest + due_penal;

        let mut entry = template.clone();
        entry["id"] = json!(bp_id);
        entry["lead_id"] = json!(lead_id);
        entry["ref_id"] = json!(loan_id);
        entry["created_at"] = json!(created);
        entry["updated_at"] = json!(updated);
        let ld = &mut entry["line_detail"];
        ld["id"] = json!(id(0x11de, i));
        ld["lead_id"] = json!(lead_id);
        ld["borrower_program_id"] = json!(bp_id);
        ld["approved_line_amount"] = num(approved);
        ld["operative_line_amount"] = num(approved);
        ld["active_line_amount"] = num(approved - disbursed);
        ld["total_disbursed_amount"] = num(disbursed);
        ld["principal_outstanding"] = num(principal_outstanding);
        ld["interest_outstanding"] = num(due_interest);
        ld["penal_outstanding"] = num(due_penal);
        ld["total_outstanding"] = num(total_outstanding);
        ld["dpd"] = json!(dpd);
        ld["peak_dpd"] = json!(dpd);
        ld["due_amount"] = num(due);
        ld["total_due_principal"] = num(due_principal);
        ld["total_due_interest"] = num(due_interest);
        ld["total_due_penal"] = num(due_penal);
        ld["due_loan_count"] = json!(if overdue { 1 } else { 0 });
        ld["npa_category"] = json!(if dpd > 90 { "NPA" } else { "STD" });
        ld["line_activation_date"] = json!(created);
        ld["line_expiry_date"] = json!((created + 365.0 * 86400.0).floor() as i64);
        ld["created_at"] = json!(created);
        ld["updated_at"] = json!(updated);
        state.leads.insert(lead_id.clone(), lead);
        state.programs.insert(lead_id, vec![entry]);
    }
}

/// Books a part repayment (a third of the due) on `spec.repay_pct` percent of the overdue lines,
/// as the LMS would; run after the index is built.
pub fn seed_repayments(state: &mut SandboxState, spec: &SeedSpec) {
    if spec.repay_pct == 0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(spec.rng_seed ^ 0x5eed_4e9a);
    let chosen: Vec<(String, Decimal)> = state
        .overdue_programs(1)
        .iter()
        .filter(|_| rng.random_range(0..100) < spec.repay_pct)
        .filter_map(|p| {
            let due = crate::money::from_json(&p["line_detail"]["due_amount"])?;
            Some((p["id"].as_str()?.to_string(), (due / Decimal::from(3)).round_dp(2)))
        })
        .collect();
    for (i, (bp, amount)) in chosen.into_iter().enumerate() {
        state.add_repayment(&bp, amount, &format!("SEEDUTR{i:08}"));
    }
}

/// One credit line, for tests and the demo: lead and borrower-program number `i` built from the
/// same template as [`seed`] (ids from [`ids`]: the program's `ref_id` is the Credgenics customer
/// id), `product_type` "scf", and its drawdowns `(kind, amount, due, dpd, days_ago)`, disbursed
/// `days_ago` days before now, each owing its amount (or its due, when larger). The line is
/// derived from the drawdowns. Returns (lead id, borrower-program id, customer id, drawdown
/// ref_ids in the order given).
///
/// The indexes are kept right here rather than by [`SandboxState::reindex`], which would also
/// move the stamp clock back to the newest line, behind records booked since: so this may follow
/// any other seeding or booking. A seed number already used is replaced, drawdowns included.
pub fn seed_credit_line(
    state: &mut SandboxState,
    i: usize,
    drawdowns: &[(&str, Decimal, Decimal, i64, f64)],
) -> (String, String, String, Vec<String>) {
    let (lead_id, bp_id, customer) = ids(i);
    let now = crate::clock::wall_secs();
    let oldest = drawdowns.iter().map(|d| d.4).fold(0.0, f64::max);
    // Opened a month before its first drawdown.
    let created = (now - (oldest + 30.0) * 86400.0).floor();
    if let Some(old) = state.programs.remove(&lead_id) {
        for p in &old {
            let ld = &p["line_detail"];
            let key = SandboxState::index_key(
                ld["updated_at"].as_f64().unwrap_or(0.0),
                ld["id"].as_str().unwrap_or(""),
            );
            state.line_index.remove(&key);
            if let Some(id) = p["id"].as_str() {
                state.program_index.remove(id);
                state.drawdowns.remove(id);
            }
        }
    }
    let (first, last) = (FIRST[i % FIRST.len()], LAST[(i / FIRST.len()) % LAST.len()]);
    let stamp = state.stamp();
    let lead = json!({
        "id": lead_id, "ref_id": format!("LD{i:06}"), "name": format!("{first} {last}"),
        "mobile": format!("9{:09}", i % 1_000_000_000),
        "email": format!("{}.{}{}@example.in", first.to_lowercase(), last.to_lowercase(), i),
        "created_at": created, "updated_at": stamp,
    });
    // The sanctioned line: the drawdowns rounded up to the next lakh.
    let lakh = Decimal::from(100_000);
    let total: Decimal = drawdowns.iter().map(|d| d.1).sum();
    let approved = ((total / lakh).ceil() * lakh).max(lakh);
    let mut entry = template();
    entry["id"] = json!(bp_id);
    entry["lead_id"] = json!(lead_id);
    entry["ref_id"] = json!(customer);
    entry["product_type"] = json!("scf");
    entry["program"]["product_type"] = json!("scf");
    entry["created_at"] = json!(created);
    entry["updated_at"] = json!(stamp);
    let ld = &mut entry["line_detail"];
    ld["id"] = json!(id(0x11de, i));
    ld["lead_id"] = json!(lead_id);
    ld["borrower_program_id"] = json!(bp_id);
    for key in ["approved_line_amount", "operative_line_amount", "active_line_amount"] {
        ld[key] = num(approved);
    }
    ld["line_activation_date"] = json!(created);
    ld["line_expiry_date"] = json!((created + 365.0 * 86400.0).floor() as i64);
    ld["created_at"] = json!(created);
    ld["updated_at"] = json!(stamp);
    let key = SandboxState::index_key(stamp, ld["id"].as_str().unwrap_or(""));
    state.leads.insert(lead_id.clone(), lead);
    state.programs.insert(lead_id.clone(), vec![entry]);
    state.program_index.insert(bp_id.clone(), (lead_id.clone(), 0));
    state.line_index.insert(key, (lead_id.clone(), 0));
    let refs = drawdowns
        .iter()
        .map(|&(kind, amount, due, dpd, days_ago)| {
            let d = state.add_drawdown(
                &bp_id,
                kind,
                amount,
                due,
                amount.max(due),
                dpd,
                now - days_ago * 86400.0,
            );
            d["ref_id"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    (lead_id, bp_id, customer, refs)
}
