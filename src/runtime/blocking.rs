//! Work that blocks a thread (an fsync'd commit, a wait on a mapping worker) without holding up
//! the async runtime: on a multi-threaded runtime the calling worker's other tasks (the
//! listener, the other jobs) move to another thread first. Elsewhere — a current-thread runtime
//! (tests), a blocking-pool thread, no runtime at all — it simply runs.

/// Runs `f` in place, the runtime's other tasks moved off this thread meanwhile when it is one of
/// a multi-threaded runtime's workers.
pub fn off_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
