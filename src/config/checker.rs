//! The checker validation fills: every problem found, keyed, and the small checks it repeats
//! (URLs, secrets and their files, cron expressions, mapping sets).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::SecretString;

use crate::mapping::FieldSet;

use super::checked::*;
use super::error::Problem;

/// The largest secret file read: a token or a password, never a disk image (`/dev/zero`).
const SECRET_FILE_CAP: u64 = 64 * 1024;

/// A secret file's text, read with a size cap; the error names why.
fn read_secret_file(path: &str) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(SECRET_FILE_CAP + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > SECRET_FILE_CAP {
        return Err(format!(
            "it is larger than {} KiB: not a secret",
            SECRET_FILE_CAP / 1024
        ));
    }
    Ok(text)
}

pub(super) struct Checker {
    pub(super) problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// A partner's base URL: http(s) with a host, no credentials in it, and `https` unless the host
    /// is loopback or `allow_insecure_http` says otherwise (a token must not cross a network in
    /// clear text).
    pub(super) fn url(&mut self, key: &str, value: &str, allow_insecure_http: bool) -> Option<url::Url> {
        if value.trim().is_empty() {
            self.problem(key, "is required (an https:// URL)");
            return None;
        }
        let u = match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            Ok(u) => {
                self.problem(
                    key,
                    format!("`{value}` is not an http(s) URL (scheme `{}`)", u.scheme()),
                );
                return None;
            }
            Err(e) => {
                self.problem(key, format!("`{value}` is not a valid URL: {e}"));
                return None;
            }
        };
        if !u.username().is_empty() || u.password().is_some() {
            // Not echoed: the value holds a credential.
            self.problem(
                key,
                "must not carry credentials (user:password@): use the section's token or credential keys",
            );
            return None;
        }
        let loopback = match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if u.scheme() == "http" && !loopback && !allow_insecure_http {
            let section = key.split('.').next().unwrap_or_default();
            self.problem(
                key,
                format!(
                    "`{value}` is plain http to a host that is not loopback: use https (or set \
                     {section}.allow_insecure_http = true if this network is trusted)"
                ),
            );
            return None;
        }
        Some(u)
    }

    /// A listen address (`ip:port`), or a problem naming `key`.
    pub(super) fn addr(&mut self, key: &str, text: &str) -> Option<std::net::SocketAddr> {
        match text.parse() {
            Ok(a) => Some(a),
            Err(e) => {
                self.problem(key, format!("`{text}` is not an address:port: {e}"));
                None
            }
        }
    }

    /// A secret from exactly one of `key` and `key_file`.
    pub(super) fn secret(
        &mut self,
        section: &str,
        key: &str,
        value: &Option<String>,
        file: &Option<String>,
        required: bool,
    ) -> Option<SecretString> {
        let full = format!("{section}.{key}");
        match (value, file) {
            (Some(_), Some(_)) => {
                self.problem(&full, format!("set either {key} or {key}_file, not both"));
                None
            }
            (Some(v), None) if !v.trim().is_empty() => Some(SecretString::from(v.trim().to_string())),
            (_, Some(path)) => match read_secret_file(path) {
                Ok(s) if !s.trim().is_empty() => Some(SecretString::from(s.trim().to_string())),
                Ok(_) => {
                    self.problem(&format!("{full}_file"), format!("file {path} is empty"));
                    None
                }
                Err(e) => {
                    self.problem(&format!("{full}_file"), format!("cannot read {path}: {e}"));
                    None
                }
            },
            _ => {
                if required {
                    self.problem(
                        &full,
                        format!(
                            "is required: set {key} or {key}_file (or env CCSYNC_{}__{})",
                            section.to_uppercase(),
                            key.to_uppercase()
                        ),
                    );
                }
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn limits(
        &mut self,
        section: &str,
        rps: u32,
        in_flight: u32,
        timeout: u64,
        connect_timeout: u64,
        retries: u32,
        max_response_bytes: u64,
        max_retry_after_secs: u64,
    ) -> ApiLimits {
        let requests_per_second = NonZeroU32::new(rps).unwrap_or_else(|| {
            self.problem(&format!("{section}.requests_per_second"), "must be at least 1");
            NonZeroU32::MIN
        });
        if in_flight == 0 || in_flight > 256 {
            self.problem(&format!("{section}.max_in_flight"), "must be between 1 and 256");
        }
        if timeout == 0 || timeout > 600 {
            self.problem(&format!("{section}.timeout_secs"), "must be between 1 and 600");
        }
        if connect_timeout == 0 || connect_timeout > 600 {
            self.problem(&format!("{section}.connect_timeout_secs"), "must be between 1 and 600");
        }
        if retries > 100 {
            self.problem(&format!("{section}.max_retries"), "must be at most 100");
        }
        if max_retry_after_secs > 3600 {
            self.problem(&format!("{section}.max_retry_after_secs"), "must be at most 3600");
        }
        if !(1024..=1 << 30).contains(&max_response_bytes) {
            self.problem(
                &format!("{section}.max_response_bytes"),
                "must be between 1024 and 1073741824 (1 GiB)",
            );
        }
        ApiLimits {
            requests_per_second,
            max_in_flight: in_flight.clamp(1, 256) as usize,
            timeout: Duration::from_secs(timeout.max(1)),
            connect_timeout: Duration::from_secs(connect_timeout.max(1)),
            max_retries: retries as usize,
            max_response_bytes,
            max_retry_after: Duration::from_secs(max_retry_after_secs),
        }
    }

    pub(super) fn cron(&mut self, key: &str, expr: &str) -> Option<croner::Cron> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build();
        match parser.parse(expr) {
            Ok(c) => {
                // A schedule that never fires (`0 0 0 30 2 *`) would stop its job in silence.
                let now = jiff::Zoned::now();
                let fires = c
                    .find_next_occurrence(&now, false)
                    .is_ok_and(|next| next.timestamp().duration_since(now.timestamp()).as_secs() <= 366 * 86400);
                if !fires {
                    self.problem(key, format!("`{expr}` does not fire in the next year"));
                    return None;
                }
                Some(c)
            }
            Err(e) => {
                self.problem(key, format!("`{expr}` is not a cron expression with seconds: {e}"));
                None
            }
        }
    }

    pub(super) fn path_template(&mut self, key: &str, value: &str, placeholder: Option<&str>) {
        if !value.starts_with('/') {
            self.problem(key, format!("`{value}` must start with /"));
        }
        if let Some(p) = placeholder
            && !value.contains(p)
        {
            self.problem(key, format!("`{value}` must contain {p}"));
        }
    }

    /// `<api>.absent_statuses` and `<api>.absent_message`.
    pub(super) fn absent(&mut self, api: &str, statuses: &[u16], message: &Option<String>) {
        if statuses.is_empty() || statuses.iter().any(|s| !(400..=499).contains(s) || *s == 429) {
            self.problem(
                &format!("{api}.absent_statuses"),
                format!("{statuses:?}: give one or more 4xx statuses (not 429) with which {api} answers a read of something it does not have"),
            );
        }
        if message.as_deref().is_some_and(|m| m.trim().is_empty()) {
            self.problem(
                &format!("{api}.absent_message"),
                "is empty: remove the key or give the text",
            );
        }
    }

    pub(super) fn fieldset(
        &mut self,
        section: &str,
        defaults: &[(&str, &str)],
        overrides: &BTreeMap<String, String>,
    ) -> FieldSet {
        match FieldSet::build(defaults, overrides) {
            Ok(f) => f,
            Err(errors) => {
                for (key, e) in errors {
                    let expr = overrides.get(&key).map(String::as_str).unwrap_or("");
                    self.problem(
                        &format!("mapping.{section}.{key}"),
                        format!("expression `{expr}` does not compile: {e}"),
                    );
                }
                FieldSet::default()
            }
        }
    }
}
