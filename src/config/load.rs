//! Loading: the file plus `CCSYNC_<SECTION>__<KEY>` environment overrides (figment), then
//! validation.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use super::checked::Config;
use super::error::{ConfigError, Problem};
use super::origin::{annotate, origin};
use super::raw::RawConfig;

/// Reads the file (if given) and the environment into the raw form. Errors name the key.
pub fn load_raw(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
    let mut fig = Figment::new();
    if let Some(path) = path {
        if !path.exists() {
            return Err(ConfigError(vec![Problem {
                key: "--config".into(),
                message: format!("file {} does not exist", path.display()),
            }]));
        }
        fig = fig.merge(Toml::file_exact(path));
    }
    // CCSYNC_NOW (the clock) and CCSYNC_CONFIG (the file) are not config keys.
    fig = fig.merge(Env::prefixed("CCSYNC_").ignore(&["now", "config"]).split("__"));
    fig.extract::<RawConfig>().map_err(|e| {
        ConfigError(
            e.into_iter()
                .map(|e| {
                    let key = if e.path.is_empty() {
                        "(config)".into()
                    } else {
                        e.path.join(".")
                    };
                    let mut message = e.kind.to_string();
                    if let Some(from) = origin(path, &key) {
                        message = format!("{message} ({from})");
                    } else if let Some(md) = e.metadata.as_ref() {
                        message = format!("{message} (from {})", md.name);
                    }
                    Problem { key, message }
                })
                .collect(),
        )
    })
}

/// Loads the config for work that sends nothing (`mapping test`): the file is optional, and
/// missing credentials and URLs are filled with placeholders so only the mapping and the other
/// keys are judged.
pub fn load_offline(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut raw = load_raw(path)?;
    if raw.crego.bearer_token.is_none() && raw.crego.bearer_token_file.is_none() && raw.crego.username.is_none() {
        raw.crego.bearer_token = Some("offline".into());
    }
    if raw.credgenics.auth_token.is_none()
        && raw.credgenics.auth_token_file.is_none()
        && raw.credgenics.client_id.is_none()
    {
        raw.credgenics.auth_token = Some("offline".into());
    }
    if raw.crego.base_url.is_empty() {
        raw.crego.base_url = "https://offline.invalid".into();
    }
    if raw.credgenics.base_url.is_empty() {
        raw.credgenics.base_url = "https://offline.invalid/recovery".into();
    }
    raw.validate().map_err(|e| annotate(path, e))
}

/// Loads and validates in one step.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    load_raw(path)?.validate().map_err(|e| annotate(path, e))
}
