//! What keeps the daemon honest while it runs: each job's heartbeat, read by the systemd
//! watchdog, and [`blocking`], how a thread-blocking wait leaves the async runtime free. (The shutdown token lives with the flows' `Context` and both clients' gates.)

pub mod blocking;
pub mod heartbeat;
