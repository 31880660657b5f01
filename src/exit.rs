//! The process's exit codes (design §3), in one leaf module every command may name without
//! importing the command line.

pub const EXIT_OK: i32 = 0;
/// Something needs attention: loans in doubt or rejected, payments pending, in doubt or dead.
pub const EXIT_ATTENTION: i32 = 1;
/// The configuration or the command line is wrong.
pub const EXIT_USAGE: i32 = 2;
/// The run could not complete: a refused credential, a partner unreachable after its retries, the
/// state file locked by another instance (design §3).
pub const EXIT_INCOMPLETE: i32 = 3;
