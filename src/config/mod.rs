//! Configuration: the TOML file plus `CCSYNC_<SECTION>__<KEY>` environment overrides (figment),
//! deserialised into [`RawConfig`] (unknown keys rejected), then [`RawConfig::validate`] produces
//! the checked [`Config`] — parsed URLs, time zone, cron schedules, secrets read from `*_file`,
//! compiled mapping — or every problem found, each naming its key.

//!
//! - [`raw`]: the serde form and its defaults; [`checked`]: the form the rest of the crate reads;
//! - [`validate`]: raw → checked, every problem keyed ([`error`]); [`load`]: file + environment.

pub mod checked;
mod checker;
pub mod error;
mod filters;
pub mod load;
pub mod origin;
pub mod raw;
mod raw_mapping;
pub mod validate;

pub use checked::*;
pub use error::{ConfigError, Problem};
pub use load::{load, load_offline, load_raw};
pub use raw::*;
