//! What the operator commands share: opening the state beside a running daemon, and times as
//! people read them.

use std::path::Path;

use crate::app::report::AppError;
use crate::store::Store;

pub(super) fn open(path: &Path) -> Result<Store, AppError> {
    Store::open_shared(path).map_err(|e| AppError::Failed(e.to_string()))
}

pub(super) fn now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

pub(super) fn when(ts: Option<f64>) -> String {
    match ts {
        Some(t) if t > 0.0 => {
            let age = (now() - t).max(0.0);
            let at = jiff::Timestamp::from_millisecond((t * 1000.0) as i64)
                .map(|x| x.to_string())
                .unwrap_or_default();
            format!("{at} ({} ago)", human_age(age))
        }
        _ => "never".into(),
    }
}

fn human_age(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}
