//! What the fake Credgenics holds for a credit-line tenant (design §8, `docs/credit-line-api.md`):
//! customers, each with its transactions (one per drawdown, each with its `defaults[]` months) and
//! one payment history at customer level — the documented Get Customer answer puts payments there,
//! with no `transaction_id`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Every customer by `client_customer_id`, and which customer each transaction belongs to.
#[derive(Debug, Default)]
pub struct ClBook {
    pub customers: BTreeMap<String, ClCustomer>,
    /// transaction id → client customer id (a transaction belongs to the customer it was first
    /// uploaded under).
    pub owner: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct ClCustomer {
    /// The applicant's keys as uploaded (`applicant_details`).
    pub details: Map<String, Value>,
    pub transactions: BTreeMap<String, ClTransaction>,
    /// The documented entries only (CG:1097–1124): no `transaction_id`.
    pub payment_history: Vec<Value>,
}

#[derive(Debug, Default)]
pub struct ClTransaction {
    pub details: Map<String, Value>,
    pub defaults: Vec<Value>,
    /// How many times each allocation month was uploaded (a second upload is a defect).
    pub uploads_per_month: BTreeMap<String, u32>,
}

/// Merges `defaults[]` entries into `defaults` by allocation month, counting uploads.
pub fn merge_defaults(defaults: &mut Vec<Value>, uploads: &mut BTreeMap<String, u32>, entries: &[Value], upload: bool) {
    for e in entries {
        let month = e["allocation_month"].as_str().unwrap_or_default().to_string();
        if upload {
            *uploads.entry(month).or_default() += 1;
        }
        match defaults
            .iter_mut()
            .find(|d| d["allocation_month"] == e["allocation_month"])
        {
            Some(existing) => {
                if let (Some(dst), Some(src)) = (existing.as_object_mut(), e.as_object()) {
                    for (k, v) in src {
                        dst.insert(k.clone(), v.clone());
                    }
                }
            }
            None => defaults.push(e.clone()),
        }
    }
}
