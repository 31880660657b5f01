//! Where a configured value came from — the environment variable that set it, or the file and
//! line — so a problem names the place an operator must change, not only the dotted key.
//!
//! figment keeps no line numbers, so the file is read again and scanned for the key under its
//! table header: enough for the flat `key = value` lines a config is written in.

use std::path::Path;

use super::error::{ConfigError, Problem};

/// The environment variable that overrides `key` (`crego.base_url` → `CCSYNC_CREGO__BASE_URL`).
pub fn env_name(key: &str) -> String {
    format!("CCSYNC_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Where `key`'s value came from, as words for a problem line; `None` for a default.
pub fn origin(path: Option<&Path>, key: &str) -> Option<String> {
    // figment lowercases what follows the prefix, so the variable's case does not matter.
    let wanted = env_name(key);
    if let Some((name, _)) = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .find(|(k, _)| k.eq_ignore_ascii_case(&wanted))
    {
        return Some(format!("set by environment variable {name}"));
    }
    let path = path?;
    let text = std::fs::read_to_string(path).ok()?;
    let line = line_of(&text, key)?;
    Some(format!("{} line {line}", path.display()))
}

/// The 1-based line that sets `key` (dotted) in TOML `text`: `field = …` under `[table]`, or the
/// `[table]` header itself when the key names a table.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    // Inside a multi-line string (its closing delimiter) or a multi-line array (its depth),
    // where a line starting with `[` or holding `=` is a value, not a header or a key.
    let mut in_string: Option<&str> = None;
    let mut depth = 0i32;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(delim) = in_string {
            if line.contains(delim) {
                in_string = None;
            }
            continue;
        }
        if depth > 0 {
            depth += brackets(line);
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim().to_string();
            if current == key {
                return Some(n + 1);
            }
            continue;
        }
        let Some((k, value)) = line.split_once('=') else {
            continue;
        };
        for delim in ["\"\"\"", "\'\'\'"] {
            if value.matches(delim).count() % 2 == 1 {
                in_string = Some(delim);
            }
        }
        if in_string.is_none() {
            depth = brackets(value).max(0);
        }
        let k = k.trim().trim_matches('"').trim_matches('\'');
        // `a.b = …` inside `[x]` sets `x.a.b`.
        let full = if current.is_empty() {
            k.to_string()
        } else {
            format!("{current}.{k}")
        };
        if full == key {
            return Some(n + 1);
        }
    }
    None
}

/// `[` minus `]` outside quoted strings: how much deeper an array value goes on this line.
fn brackets(text: &str) -> i32 {
    let mut quote: Option<char> = None;
    let mut depth = 0;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth -= 1,
            (None, '#') => break,
            _ => {}
        }
    }
    depth
}

/// Adds each problem's origin to its message, where one is found.
pub fn annotate(path: Option<&Path>, mut error: ConfigError) -> ConfigError {
    for Problem { key, message } in &mut error.0 {
        if let Some(from) = origin(path, key) {
            *message = format!("{message} ({from})");
        }
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_line_under_its_table() {
        let text = "# c\n[crego]\nbase_url = \"x\"\n\n[credgenics]\nbase_url = \"y\"\n[mapping.loan]\n\"tags\" = '1'\n";
        assert_eq!(line_of(text, "crego.base_url"), Some(3));
        assert_eq!(line_of(text, "credgenics.base_url"), Some(6));
        assert_eq!(line_of(text, "mapping.loan.tags"), Some(8));
        assert_eq!(line_of(text, "mapping.loan"), Some(7));
        assert_eq!(line_of(text, "sync.timezone"), None);
        assert_eq!(env_name("webhook.token"), "CCSYNC_WEBHOOK__TOKEN");
        // A multi-line string or array whose lines look like headers or keys is a value.
        let text = "[mapping.loan]\ntags = \'\'\'\n[not.a.header]\nx = 1\n\'\'\'\nlist = [\n  \"[b]\",\n]\n\'name\' = '.a'\n[sync]\nmin_dpd = 5\n";
        assert_eq!(line_of(text, "mapping.loan.tags"), Some(2));
        assert_eq!(line_of(text, "mapping.loan.name"), Some(9));
        assert_eq!(line_of(text, "sync.min_dpd"), Some(11));
        assert_eq!(line_of(text, "not.a.header.x"), None);
    }
}
