//! What one doctor check found, and the list as printed.

use std::fmt::Write as _;
use std::path::Path;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Worth a look, not a reason to hold go-live.
    Warn,
    Fail,
    /// Not run: a check it depends on failed.
    Skip,
}

/// One line of the list.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to change, for a ✗ or a `!`.
    pub fix: Option<String>,
    /// Shown indented under the line (the mapped payload, masked).
    pub extra: Option<String>,
}

impl Check {
    fn new(name: &'static str, verdict: Verdict, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict,
            detail: detail.into(),
            fix: None,
            extra: None,
        }
    }
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Verdict::Pass, detail)
    }
    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Verdict::Warn, detail).fix(fix)
    }
    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Verdict::Fail, detail).fix(fix)
    }
    pub fn skip(name: &'static str, why: impl Into<String>) -> Self {
        Self::new(name, Verdict::Skip, why)
    }
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
    pub fn with_extra(mut self, extra: String) -> Self {
        self.extra = Some(extra);
        self
    }
}

/// The list as printed.
pub fn render(path: &Path, list: &[Check]) -> String {
    let mut out = format!("doctor: {}\n", path.display());
    let width = list.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in list {
        let mark = match c.verdict {
            Verdict::Pass => "✓",
            Verdict::Warn => "!",
            Verdict::Fail => "✗",
            Verdict::Skip => "-",
        };
        let _ = writeln!(out, "{mark} {:<width$}  {}", c.name, c.detail);
        let pad = " ".repeat(width + 4);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "{pad}fix: {fix}");
        }
        if let Some(extra) = &c.extra {
            for line in extra.lines() {
                let _ = writeln!(out, "{pad}{line}");
            }
        }
    }
    let count = |v| list.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        out,
        "{} passed, {} warnings, {} failed, {} skipped",
        count(Verdict::Pass),
        count(Verdict::Warn),
        count(Verdict::Fail),
        count(Verdict::Skip)
    );
    out
}
