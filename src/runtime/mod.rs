//! What keeps the daemon honest while it runs: each job's heartbeat, read by the systemd
//! watchdog. (The shutdown token lives with the flows' `Context` and both clients' gates.)

pub mod heartbeat;
