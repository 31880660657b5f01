//! Agent recoveries at a credit-line tenant's fake Credgenics (design §8, flow B's input there):
//! a field collection on one transaction, entered as Credgenics shows it — one entry in the
//! **customer's** payment history with the documented keys only (no `transaction_id`: the
//! documented entry has none), and the amount added to the transaction's latest month. The LMS is
//! not told (bringing it back is flow B's job), and no webhook is sent: the documented event
//! names only `loan_id` (see [`super::credit_line`]).

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::state::SandboxState;
use crate::money::{from_json, to_json};

impl SandboxState {
    /// A field agent's cash collection of `amount` on `customer`'s `transaction`. `None` unless
    /// the customer exists and owns the transaction, and the transaction has a `defaults[]`
    /// month to allocate it to (its latest upload).
    pub fn add_cl_agent_collection(
        &mut self,
        customer: &str,
        transaction: &str,
        amount: Decimal,
        reference: &str,
    ) -> Option<Value> {
        let owned = self
            .credit_line
            .customers
            .get(customer)?
            .transactions
            .get(transaction)?;
        let month = owned.defaults.last()?["allocation_month"].clone();
        self.next_payment_id += 1;
        // The documented entry (CG:1097–1124), key for key.
        let entry = json!({
            "payment_id": self.next_payment_id,
            "client_customer_id": customer,
            "amount_recovered": to_json(amount),
            "final_status": "Partially Recovered",
            "recovery_method": "Field Collection",
            "allocation_month": month,
            "payment_method": "Cash",
            "payment_mode": "cash",
            "payment_reference_number": reference,
            "author": "agent@collections.example",
            "created": jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string(),
        });
        let c = self.credit_line.customers.get_mut(customer)?;
        let latest = c.transactions.get_mut(transaction)?.defaults.last_mut()?;
        let before = from_json(&latest["amount_recovered"]).unwrap_or_default();
        latest["amount_recovered"] = to_json(before + amount);
        c.payment_history.push(entry.clone());
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::sandbox::credit_line_book::{ClCustomer, ClTransaction};

    /// Customer C-1 owning T-1 (months 2024-05-01, then 2024-06-01) and T-2 (no months).
    fn book() -> SandboxState {
        let mut s = SandboxState::default();
        let t1 = ClTransaction {
            defaults: vec![
                json!({"allocation_month": "2024-05-01", "amount_recovered": 0}),
                json!({"allocation_month": "2024-06-01", "amount_recovered": 100.5}),
            ],
            ..ClTransaction::default()
        };
        let mut c = ClCustomer::default();
        c.transactions.insert("T-1".into(), t1);
        c.transactions.insert("T-2".into(), ClTransaction::default());
        s.credit_line.customers.insert("C-1".into(), c);
        for t in ["T-1", "T-2"] {
            s.credit_line.owner.insert(t.into(), "C-1".into());
        }
        s
    }

    #[test]
    fn a_collection_is_a_documented_history_entry_and_moves_the_latest_month() {
        let mut s = book();
        let p = s
            .add_cl_agent_collection("C-1", "T-1", Decimal::new(2500, 1), "RCPT-9")
            .expect("owned transaction with months");
        let keys: BTreeSet<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        let documented: BTreeSet<&str> = [
            "payment_id",
            "client_customer_id",
            "amount_recovered",
            "final_status",
            "recovery_method",
            "allocation_month",
            "payment_method",
            "payment_mode",
            "payment_reference_number",
            "author",
            "created",
        ]
        .into();
        assert_eq!(keys, documented);
        assert!(p.get("transaction_id").is_none());
        assert_eq!(p["allocation_month"], "2024-06-01");
        assert_eq!(p["amount_recovered"].to_string(), "250");
        assert_eq!(p["payment_reference_number"], "RCPT-9");
        assert_eq!(p["payment_id"], 1);
        let c = &s.credit_line.customers["C-1"];
        assert_eq!(c.payment_history, vec![p]);
        let months = &c.transactions["T-1"].defaults;
        assert_eq!(months[1]["amount_recovered"].to_string(), "350.5");
        assert_eq!(months[0]["amount_recovered"].to_string(), "0");
    }

    #[test]
    fn no_collection_without_the_customer_the_transaction_or_a_month() {
        let mut s = book();
        let one = Decimal::ONE;
        assert!(s.add_cl_agent_collection("C-2", "T-1", one, "").is_none());
        assert!(s.add_cl_agent_collection("C-1", "T-9", one, "").is_none());
        assert!(s.add_cl_agent_collection("C-1", "T-2", one, "").is_none());
        assert!(s.credit_line.customers["C-1"].payment_history.is_empty());
        assert_eq!(s.next_payment_id, 0);
    }
}
