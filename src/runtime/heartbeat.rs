//! Which jobs are alive and moving, for the systemd watchdog: each scheduled job has a [`Beat`];
//! while it runs, every bit of progress its flows report (a page read, an item delivered, a loan
//! polled) touches the beat of the job it runs under (a task-local, so flows need not know their
//! job). The watchdog is fed only while every job's loop is alive and no running job has been
//! silent for `daemon.job_stall_secs` — one hung job is enough to have systemd restart us.
//!
//! Times are monotonic (a frozen `CCSYNC_NOW` or a stepped wall clock must not look like a hang).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

tokio::task_local! {
    static CURRENT: Arc<Beat>;
}

/// One job's liveness.
#[derive(Debug)]
pub struct Beat {
    name: &'static str,
    base: Instant,
    alive: AtomicBool,
    /// Milliseconds since `base` when the running job last moved; 0 while idle.
    moved_at: AtomicU64,
}

impl Beat {
    fn ms(&self) -> u64 {
        // +1: 0 means "not running".
        self.base.elapsed().as_millis() as u64 + 1
    }

    fn touch(&self) {
        self.moved_at.store(self.ms(), Ordering::Relaxed);
    }

    /// Runs `work` as this job: it counts as running (and silent unless it reports progress)
    /// until it returns.
    pub async fn running<T>(self: &Arc<Self>, work: impl Future<Output = T>) -> T {
        struct Idle<'a>(&'a Beat);
        impl Drop for Idle<'_> {
            fn drop(&mut self) {
                self.0.moved_at.store(0, Ordering::Relaxed);
            }
        }
        self.touch();
        let _idle = Idle(self);
        CURRENT.scope(self.clone(), work).await
    }

    /// Marks the job's loop as ended (dropped on return and on panic alike).
    pub fn alive_guard(self: &Arc<Self>) -> AliveGuard {
        self.alive.store(true, Ordering::Relaxed);
        AliveGuard(self.clone())
    }
}

/// Clears its beat's `alive` when the job loop that holds it ends, however it ends.
pub struct AliveGuard(Arc<Beat>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Relaxed);
    }
}

/// Every job's beat.
#[derive(Debug)]
pub struct Beats {
    base: Instant,
    beats: Mutex<Vec<Arc<Beat>>>,
}

impl Default for Beats {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            beats: Mutex::new(Vec::new()),
        }
    }
}

impl Beats {
    /// The beat of job `name` (created on first use).
    pub fn job(&self, name: &'static str) -> Arc<Beat> {
        let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = beats.iter().find(|b| b.name == name) {
            return b.clone();
        }
        let b = Arc::new(Beat {
            name,
            base: self.base,
            alive: AtomicBool::new(false),
            moved_at: AtomicU64::new(0),
        });
        beats.push(b.clone());
        b
    }

    /// Why the watchdog must not be fed now, if it must not: a job whose loop has ended, or a
    /// running job silent for longer than `stall`.
    pub fn verdict(&self, stall: Duration) -> Result<(), String> {
        let beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        for b in beats.iter() {
            if !b.alive.load(Ordering::Relaxed) {
                return Err(format!("job {} is no longer scheduled (its loop ended)", b.name));
            }
            let moved = b.moved_at.load(Ordering::Relaxed);
            if moved > 0 {
                let silent = Duration::from_millis(b.ms().saturating_sub(moved));
                if silent > stall {
                    return Err(format!(
                        "job {} has made no progress for {} s (daemon.job_stall_secs = {})",
                        b.name,
                        silent.as_secs(),
                        stall.as_secs()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Reports progress of the job the calling task runs under, if any.
pub fn progressed() {
    let _ = CURRENT.try_with(|b| b.touch());
}

/// Awaits `wait` — another job's lock — as idle time: a job queued behind the nightly poll is
/// not hung, however long the poll takes. Its silence is measured again from when it gets in.
pub async fn waiting<T>(wait: impl Future<Output = T>) -> T {
    let _ = CURRENT.try_with(|b| b.moved_at.store(0, Ordering::Relaxed));
    let out = wait.await;
    progressed();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_running_job_or_an_ended_loop_withholds_the_watchdog() {
        let beats = Beats::default();
        let a = beats.job("a");
        let b = beats.job("b");
        let _ga = a.alive_guard();
        let gb = b.alive_guard();
        assert!(beats.verdict(Duration::from_millis(50)).is_ok());
        // Running and reporting progress: fine.
        a.running(async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                progressed();
            }
        })
        .await;
        assert!(beats.verdict(Duration::from_millis(50)).is_ok());
        // Running and silent past the limit: withheld, naming the job.
        let a2 = a.clone();
        let hung = tokio::spawn(async move { a2.running(std::future::pending::<()>()).await });
        tokio::time::sleep(Duration::from_millis(120)).await;
        let why = beats.verdict(Duration::from_millis(50)).unwrap_err();
        assert!(why.contains("job a"), "{why}");
        hung.abort();
        let _ = hung.await;
        // Idle jobs (the hung run was dropped) are never stale; an ended loop is.
        assert!(beats.verdict(Duration::from_millis(50)).is_ok());
        drop(gb);
        assert!(beats.verdict(Duration::from_millis(50)).unwrap_err().contains("job b"));
    }
}
