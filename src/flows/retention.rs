//! Retention (`[state] retain_days`): after the nightly job and each `--once`, raw payloads and
//! logs of work finished longer ago than that are pruned from the state. The keys that stop a
//! second send are never touched ([`crate::store::Store::prune`] says what is).

use crate::store::StoreError;
use crate::telemetry::events;

use super::context::Context;

/// Prunes what is older than the retention; nothing when it is 0.
pub fn prune(ctx: &Context) -> Result<(), StoreError> {
    let days = ctx.config.retain_days;
    if days == 0 {
        return Ok(());
    }
    let cutoff = ctx.now_secs() - f64::from(days) * 86_400.0;
    let p = ctx.store.prune(cutoff)?;
    if p.total() > 0 {
        events::state_pruned(days, p.payloads, p.webhook_events, p.runs, p.credgenics_reads);
    }
    Ok(())
}
