//! The three jobs as the cycle and the scheduler run them, in the configured Credgenics mode:
//! lending ([`super::loans`], [`super::repayments`], [`super::recoveries`]) or credit line
//! ([`super::credit_line`]).

use super::context::{Context, SyncError};
use super::credit_line;
use super::loans::{self, FlowAStats};
use super::recoveries::{self, FlowBStats, Poll};
use super::repayments::{self, FlowCStats};
use crate::config::CredgenicsMode;

fn credit_line(ctx: &Context) -> bool {
    ctx.config.credgenics.mode == CredgenicsMode::CreditLine
}

/// Flow A: overdue lines (or drawdowns) placed.
pub async fn place_loans(ctx: &Context, since: Option<f64>, stats: &mut FlowAStats) -> Result<(), SyncError> {
    if credit_line(ctx) {
        credit_line::place::run(ctx, since, stats).await
    } else {
        loans::run(ctx, since, stats).await
    }
}

/// Flow C: LMS repayments pushed.
pub async fn push_repayments(ctx: &Context, since: Option<f64>, stats: &mut FlowCStats) -> Result<(), SyncError> {
    if credit_line(ctx) {
        credit_line::repay::run(ctx, since, stats).await
    } else {
        repayments::run(ctx, since, stats).await
    }
}

/// Flow B: recoveries read and written back.
pub async fn pull_recoveries(ctx: &Context, poll: Poll, stats: &mut FlowBStats) -> Result<(), SyncError> {
    if credit_line(ctx) {
        credit_line::recover::run(ctx, poll, stats).await
    } else {
        recoveries::run(ctx, poll, stats).await
    }
}
