//! Money as exact decimals: JSON numbers are read from their literal text (serde_json's
//! `arbitrary_precision`) and written back the same way — never through f64.

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

/// A JSON number (or numeric string) as an exact decimal.
pub fn from_json(v: &Value) -> Option<Decimal> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    s.parse().ok().or_else(|| Decimal::from_scientific(&s).ok())
}

/// A decimal as a JSON number with exactly its digits (trailing zeros dropped).
pub fn to_json(d: Decimal) -> Value {
    serde_json::from_str(&d.normalize().to_string()).expect("a decimal is a JSON number")
}

/// Half-up (away from zero) to `decimals` places, as the Credgenics amounts are sent.
pub fn round(d: Decimal, decimals: u32) -> Decimal {
    d.round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero)
}
