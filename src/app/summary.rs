//! The readable summary of one cycle, per flow: what `demo` prints after each of its cycles and
//! what `--once` and `--dry-run` end with on a terminal (piped, or with `--json`, `--once` prints
//! its report as one JSON line instead).

use std::fmt::Write as _;

use crate::flows::{RunOutcome, RunReport};

/// The per-flow lines under `title`.
pub fn render(title: &str, r: &RunReport) -> String {
    let a = &r.place_loans;
    let c = &r.push_repayments;
    let b = &r.pull_recoveries;
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    let _ = writeln!(
        out,
        "  A  leads scanned {}, overdue {}, placed {}, new allocations {}, updated {}, skipped {}, rejected {}",
        a.scanned,
        a.overdue,
        a.placed,
        a.new_allocations,
        a.updated,
        a.skipped + a.unchanged,
        a.rejected
    );
    let _ = writeln!(
        out,
        "  C  repayment records read {}, pushed to Credgenics {}, echoes ignored {}, dead {}",
        c.scanned, c.delivery.sent, c.echoes, c.delivery.dead
    );
    let _ = writeln!(
        out,
        "  B  loans polled {}, recoveries written to the LMS {}, echoes ignored {}, dead {}",
        b.polled, b.delivery.sent, b.echoes, b.delivery.dead
    );
    let requests: Vec<String> = r
        .requests
        .iter()
        .map(|(api, v)| format!("{api} {}", v["requests"]))
        .collect();
    let _ = writeln!(out, "     requests: {}", requests.join(", "));
    if let Some(e) = &r.error {
        let _ = writeln!(out, "     stopped: {e}");
    }
    out
}

/// `--once` on a terminal: the verdict, the flows, and where to look next.
pub fn once(r: &RunReport) -> String {
    let title = match r.outcome {
        RunOutcome::Clear => "crego-credgenics-sync --once: all clear".to_string(),
        RunOutcome::Attention => format!(
            "crego-credgenics-sync --once: attention needed, {} item(s) unresolved",
            r.unresolved
        ),
        RunOutcome::Incomplete => "crego-credgenics-sync --once: incomplete (run it again: it resumes)".to_string(),
    };
    let mut out = render(&title, r);
    if r.outcome == RunOutcome::Attention {
        out.push_str("     next: `status` for the whole state, `dead-letters list` for what was refused and why\n");
    }
    out
}

/// `--dry-run` on a terminal, after the would-be requests: how many, and the flows.
pub fn dry_run(r: &RunReport, would_send: u64) -> String {
    if would_send == 0 {
        return render("dry run: nothing to send; nothing was written", r);
    }
    render(
        &format!("dry run: {would_send} request(s) would be sent (above); nothing was written"),
        r,
    )
}

/// The one-line note a piped `--dry-run` leaves on stderr (stdout stays JSON lines).
pub fn dry_run_note(would_send: u64) -> String {
    if would_send == 0 {
        "dry run: nothing to send".into()
    } else {
        format!("dry run: {would_send} request(s) would be sent; nothing was written")
    }
}
