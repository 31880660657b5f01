//! `[crego.filters]` as written: what a tenant calls each Crego list filter (design §5: the
//! documents do not name them).

use serde::Deserialize;

/// `[crego.filters]`: what Crego calls each list filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCregoFilters {
    /// Items updated at or after this epoch time (the change streams).
    #[serde(default = "d_f_updated_since")]
    pub updated_since: String,
    /// Sort order; its value is `updated_at`.
    #[serde(default = "d_f_ordering")]
    pub ordering: String,
    /// A record's type (`repayment`).
    #[serde(default = "d_f_type")]
    pub record_type: String,
    /// A record's `utr` (the look-up before an in-doubt record is sent again).
    #[serde(default = "d_f_utr")]
    pub utr: String,
    /// A record's account (reconcile reads the records of one loan's account).
    #[serde(default = "d_f_account")]
    pub account: String,
}

impl Default for RawCregoFilters {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all filter keys have defaults")
    }
}

fn d_f_updated_since() -> String {
    "updated_at__gte".into()
}
fn d_f_ordering() -> String {
    "ordering".into()
}
fn d_f_type() -> String {
    "type".into()
}
fn d_f_utr() -> String {
    "utr".into()
}
fn d_f_account() -> String {
    "account".into()
}
