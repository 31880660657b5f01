//! The process clock and calendar arithmetic in the configured time zone.
//!
//! `CCSYNC_NOW` (RFC 3339) moves "now" for the whole process at start; time then runs on at real
//! speed from there. Credgenics dates are always computed in the configured zone, never UTC.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

/// Name of the environment variable that overrides "now".
pub const NOW_ENV: &str = "CCSYNC_NOW";

#[derive(Debug, Clone)]
pub struct Clock {
    offset: SignedDuration,
    tz: TimeZone,
}

impl Clock {
    /// The real clock in `tz`.
    pub fn system(tz: TimeZone) -> Self {
        Self {
            offset: SignedDuration::ZERO,
            tz,
        }
    }

    /// A clock whose "now" is `at` as of this call.
    pub fn starting_at(at: Timestamp, tz: TimeZone) -> Self {
        Self {
            offset: at.duration_since(Timestamp::now()),
            tz,
        }
    }

    /// Reads `CCSYNC_NOW`; `Ok(None)` when unset.
    pub fn from_env(tz: TimeZone) -> Result<(Self, Option<String>), String> {
        match std::env::var(NOW_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                let at = parse_instant(v.trim(), &tz)
                    .map_err(|e| format!("{NOW_ENV}=`{v}` is not an RFC 3339 time: {e}"))?;
                Ok((Self::starting_at(at, tz), Some(v)))
            }
            _ => Ok((Self::system(tz), None)),
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::now() + self.offset
    }

    pub fn now_zoned(&self) -> Zoned {
        self.now().to_zoned(self.tz.clone())
    }

    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// Today's date in the configured zone.
    pub fn today(&self) -> Date {
        self.now_zoned().date()
    }

    /// Offset of the zone from UTC now, in seconds (for the mapping's `local_date`).
    pub fn utc_offset_secs(&self) -> i32 {
        self.tz.to_offset(self.now()).seconds()
    }
}

/// A date or RFC 3339 time; a bare date is midnight in `tz`.
pub fn parse_instant(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    match s.parse::<Date>() {
        Ok(d) => d.to_zoned(tz.clone()).map(|z| z.timestamp()).map_err(|e| e.to_string()),
        Err(e) => Err(format!("expected YYYY-MM-DD or an RFC 3339 time ({e})")),
    }
}

/// The real wall clock in epoch seconds (never `CCSYNC_NOW`): what partners' `updated_at` values
/// are compared with.
pub fn wall_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Credgenics allocation month: `YYYY-M-01`, month without zero padding.
pub fn allocation_month(d: Date) -> String {
    format!("{}-{}-01", d.year(), d.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_month_has_no_zero_padding() {
        assert_eq!(allocation_month(Date::constant(2026, 7, 19)), "2026-7-01");
        assert_eq!(allocation_month(Date::constant(2026, 12, 1)), "2026-12-01");
    }

    #[test]
    fn month_is_taken_in_ist_not_utc() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap();
        // 2026-11-30T20:00Z is already 1 December in India.
        let at: Timestamp = "2026-11-30T20:00:00Z".parse().unwrap();
        let clock = Clock::starting_at(at, tz);
        assert_eq!(allocation_month(clock.today()), "2026-12-01");
        assert_eq!(clock.utc_offset_secs(), 19800);
    }

    #[test]
    fn bare_dates_are_local_midnight() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap();
        let ts = parse_instant("2026-11-01", &tz).unwrap();
        assert_eq!(ts.to_string(), "2026-10-31T18:30:00Z");
        assert!(parse_instant("yesterday", &tz).is_err());
    }
}
