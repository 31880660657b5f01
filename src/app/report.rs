//! How a command ended: a [`Report`] when it ran to its end, an [`AppError`] when it did not.
//! Neither knows an exit number; `main.rs` turns them into one (design §3).

use std::fmt;

/// A command that ran to its end, and whether what it found needs an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Done, and nothing pending, in doubt, rejected or dead.
    Clear,
    /// Done, but something needs attention (it has been said on stdout or stderr).
    Attention,
}

impl Report {
    /// `Clear` when `ok`, else `Attention`.
    pub fn clear_if(ok: bool) -> Self {
        if ok { Self::Clear } else { Self::Attention }
    }
}

/// Why a command stopped. The message is printed once, by `main.rs`, as `error: <message>`
/// (a config's problems as their own block); an empty message means it was said already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppError {
    /// The command line, or one setting, is wrong.
    Usage(String),
    /// The configuration does not load: its problems, one per line, as `ConfigError` lists them.
    Config(String),
    /// The command failed; something needs attention.
    Failed(String),
    /// The run could not complete: a refused credential, a partner unreachable after its
    /// retries, the state file locked by another instance.
    Incomplete(String),
}

impl AppError {
    pub fn message(&self) -> &str {
        match self {
            Self::Usage(m) | Self::Config(m) | Self::Failed(m) | Self::Incomplete(m) => m,
        }
    }

    /// A configuration that does not load.
    pub fn config(e: impl fmt::Display) -> Self {
        Self::Config(e.to_string())
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Already a block of lines of its own.
            Self::Config(m) => write!(f, "{}", m.trim_end()),
            other => write!(f, "error: {}", other.message()),
        }
    }
}

impl std::error::Error for AppError {}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Locked { .. } => Self::Incomplete(e.to_string()),
            _ => Self::Failed(e.to_string()),
        }
    }
}
