//! The application: the command line ([`args`], clap's raw form) resolved into one [`Mode`]
//! ([`mode`]), run by [`run`]; every command ends in a [`Report`] or an [`AppError`]
//! ([`report`]), which only `main.rs` turns into an exit number.

pub mod args;
mod manual;
pub mod mode;
pub mod report;
mod run;
pub mod summary;

pub use mode::{Mode, Resolved};
pub use report::{AppError, Report};
pub use run::run;
