//! Credit-line mode (design §8): a Crego line is one Credgenics customer, each overdue drawdown
//! (a loan or topup under the line) one transaction. The three flows, as their lending
//! counterparts but per transaction:
//!
//! - [`place`]: flow A, overdue drawdowns placed as transactions (upload, update, new month);
//! - [`repay`]: flow C, LMS repayments shared across transactions ([`split`]) and pushed per share;
//! - [`recover`]: flow B, customer payment histories written back as LMS records;
//! - [`drawdown`]: a drawdown read through `[mapping.transaction]`, and its upload payload;
//! - [`transaction`]: flow A's uploads and updates of one transaction, and in-doubt look-ups.

pub mod drawdown;
pub mod place;
pub mod recover;
pub mod repay;
pub mod split;
pub mod transaction;
