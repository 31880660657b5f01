//! `reconcile`'s output: a table for people (only the loans that disagree, then totals), JSON
//! and CSV for finance. The run itself is [`crate::flows::reconcile`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rust_decimal::Decimal;

use crate::flows::reconcile::Report;
use crate::store::Finding;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => {
            let mut v = serde_json::to_value(report).unwrap_or_default();
            v["complete"] = report.complete().into();
            v["open_findings"] = report.open().count().into();
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        Format::Csv => csv(&report.findings),
    }
}

fn amount(d: Option<Decimal>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{:.2}", d))
}

fn table(report: &Report) -> String {
    let r = &report.run;
    let mut out = String::new();
    let disagreeing = r.loans_checked - r.agreeing;
    let _ = writeln!(
        out,
        "reconcile run {} ({}): {} loans checked, {} agree, {} disagree, {} unreadable{}",
        r.id,
        r.scope,
        r.loans_checked,
        r.agreeing,
        disagreeing,
        r.unreadable,
        if report.complete() { "" } else { " — INCOMPLETE" }
    );
    if let Some(e) = &report.error {
        let _ = writeln!(out, "stopped: {e}");
    }
    let open: Vec<&Finding> = report.open().collect();
    if !open.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<14} {:<30} {:<10} {:<20} {:>12} {:>12}",
            "LOAN", "KIND", "MONTH", "REFERENCE", "LMS", "CREDGENICS"
        );
        for f in &open {
            let _ = writeln!(
                out,
                "{:<14} {:<30} {:<10} {:<20} {:>12} {:>12}",
                f.loan_id,
                f.kind.as_str(),
                f.month.as_deref().unwrap_or("-"),
                f.reference.as_deref().unwrap_or("-"),
                amount(f.lms),
                amount(f.credgenics)
            );
            let _ = writeln!(out, "{:<14} {}; {}", "", f.detail, f.action);
        }
    }
    let fixed: Vec<&Finding> = report.findings.iter().filter(|f| f.fixed).collect();
    if !fixed.is_empty() {
        let _ = writeln!(out, "\nmended by --fix: {}", counts(fixed.iter().copied()));
        for f in fixed {
            let _ = writeln!(
                out,
                "  {} {} {}",
                f.loan_id,
                f.kind.as_str(),
                f.reference.as_deref().or(f.month.as_deref()).unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        out,
        "\nfindings: {}",
        if open.is_empty() {
            "none — the books agree".to_string()
        } else {
            counts(open.iter().copied())
        }
    );
    let _ = writeln!(
        out,
        "money: LMS {:.2}, Credgenics {:.2}, difference {:.2}",
        r.lms_total,
        r.credgenics_total,
        r.lms_total - r.credgenics_total
    );
    let _ = writeln!(
        out,
        "requests: Crego {}, Credgenics {}",
        report.requests.0, report.requests.1
    );
    out
}

fn counts<'a>(findings: impl Iterator<Item = &'a Finding>) -> String {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for f in findings {
        *by.entry(f.kind.as_str()).or_default() += 1;
    }
    by.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn csv(findings: &[Finding]) -> String {
    let mut out = String::from("loan_id,kind,month,reference,lms,credgenics,fixed,detail,action\n");
    for f in findings {
        let fields = [
            f.loan_id.clone(),
            f.kind.as_str().to_string(),
            f.month.clone().unwrap_or_default(),
            f.reference.clone().unwrap_or_default(),
            f.lms.map(|d| d.to_string()).unwrap_or_default(),
            f.credgenics.map(|d| d.to_string()).unwrap_or_default(),
            f.fixed.to_string(),
            f.detail.clone(),
            f.action.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|s| quote(s)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break; a leading `=`, `+`, `-` or
/// `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
fn quote(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.parse::<f64>().is_err()) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a, b"), "\"a, b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("=1+1"), "'=1+1");
        assert_eq!(quote("-12.50"), "-12.50");
    }
}
