//! Daemon mode: the webhook listener all the time, every job on its schedule, one shutdown path.
//!
//! Start: the state is open and both listeners bound (by the caller), then systemd hears READY=1.
//! The watchdog is pinged only while the loops make progress. SIGTERM/SIGINT (the `shutdown`
//! future): scheduling stops, the in-flight batch finishes (flows stop between pages, unsent
//! payments stay pending) within `daemon.shutdown_grace_secs`, the state is committed (every
//! write is its own transaction), the listener closes, and the process exits 0.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::report::{AppError, Report};
use crate::flows::Context;
use crate::schedule::{Job, job_loop};
use crate::server::{self, ServerState};
use crate::telemetry::events;

/// The daemon's two listeners, bound by the caller (tests bind port 0).
pub struct Listeners {
    /// `webhook.listen`: Credgenics' webhook.
    pub webhook: TcpListener,
    /// `[admin] listen`: `/metrics`, `/healthz`, `/readyz`.
    pub admin: TcpListener,
}

/// Runs until `shutdown` completes.
pub async fn run(
    ctx: Context,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Report, AppError> {
    let Listeners {
        webhook: listener,
        admin,
    } = listeners;
    let Some(token) = ctx.config.webhook.token.clone() else {
        return Err(AppError::Usage(
            "webhook.token (or webhook.token_file) is required to run the daemon's webhook listener".into(),
        ));
    };
    crate::telemetry::prometheus();
    if let Ok(jobs) = ctx.store.jobs() {
        for job in jobs {
            if let Some(at) = job.last_ok_at {
                events::last_success_restored(&job.job, at);
            }
        }
    }
    let ctx = Arc::new(ctx);
    let (close_tx, mut close_rx) = watch::channel(false);
    let state = ServerState {
        config: ctx.config.clone(),
        store: ctx.store.clone(),
        clock: ctx.clock.clone(),
        token,
    };
    let addr = listener.local_addr().ok();
    let admin_addr = admin.local_addr().ok();
    let admin_state = server::AdminState {
        config: ctx.config.clone(),
        store: ctx.store.clone(),
        clock: ctx.clock.clone(),
    };
    let mut admin_close = close_rx.clone();
    let admin = tokio::spawn(server::serve_admin(admin, admin_state, async move {
        let _ = admin_close.wait_for(|closed| *closed).await;
    }));
    let server = tokio::spawn(server::serve(listener, state, async move {
        let _ = close_rx.wait_for(|closed| *closed).await;
    }));
    events::daemon_started(&addr, &admin_addr);
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let watchdog = tokio::spawn(watchdog(ctx.clone()));

    let (stop_tx, stop_rx) = watch::channel(false);
    let jobs: Vec<_> = Job::ALL
        .iter()
        .map(|job| tokio::spawn(job_loop(ctx.clone(), *job, stop_rx.clone())))
        .collect();

    shutdown.await;
    events::daemon_stopping();
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // Stopping: the job loops end on purpose now, which the watchdog would report as dead jobs.
    watchdog.abort();
    ctx.cancel.cancel();
    let _ = stop_tx.send(true);
    // The grace is a hard bound on the whole stop, listener included: whatever still runs when
    // it ends (a request that never answers, a mapping past its budget) is abandoned with the
    // process; the state is consistent at every commit, so the next run resumes from it.
    let grace = ctx.config.daemon.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    let drained = tokio::time::timeout_at(deadline, futures::future::join_all(jobs))
        .await
        .is_ok();
    if !drained {
        events::daemon_grace_expired(grace);
    }
    let _ = close_tx.send(true);
    let close_by = deadline.max(tokio::time::Instant::now() + Duration::from_millis(300));
    let _ = tokio::time::timeout_at(close_by, futures::future::join(server, admin)).await;
    events::daemon_stopped();
    Ok(Report::Clear)
}

/// Feeds the systemd watchdog at half its interval while every job's loop is alive and no
/// running job has been silent for `daemon.job_stall_secs`; otherwise withholds it (and says
/// why), so systemd restarts a daemon with a hung or dead job.
async fn watchdog(ctx: Arc<Context>) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let interval = Duration::from_micros(usec);
    loop {
        tokio::time::sleep(interval / 2).await;
        match ctx.beats.verdict(ctx.config.daemon.job_stall) {
            Ok(()) => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            Err(why) => events::watchdog_withheld(&why),
        }
    }
}
