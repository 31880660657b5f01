//! How long an exchanged token lives, read from the answer as the partner gives it.
//!
//! Crego answers `expires_in` (seconds). Credgenics' access-token answer carries `expiry`, typed
//! only as a string (a lifetime in seconds, or when it ends: epoch seconds or milliseconds, or an
//! RFC 3339 time), with a documented default lifetime of 900 s. A JWT token says when it ends in
//! its `exp` claim. The first of these that reads sensibly wins; with none, the exchange's
//! default. Reading it too long costs one 401 and a renewal (the client renews once after a 401),
//! reading it too short an early renewal: neither loses a request.

use serde_json::Value;

/// Lifetimes are at most a day (Credgenics' documented maximum is 86 400 s) and at least a second.
const MAX_SECS: f64 = 86_400.0;

/// The token's lifetime in seconds from `now` (epoch seconds), or `default`.
pub fn lifetime_secs(answer: &Value, token: &str, now: f64, default: f64) -> f64 {
    let read = seconds(&answer["expires_in"], now, false)
        .or_else(|| seconds(&answer["expiry"], now, true))
        .or_else(|| jwt_exp(token).map(|exp| exp - now));
    read.filter(|s| s.is_finite() && *s >= 1.0)
        .unwrap_or(default)
        .min(MAX_SECS)
}

/// A lifetime, or (when `may_be_instant`) an end time, as a number or a string.
fn seconds(v: &Value, now: f64, may_be_instant: bool) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<f64>() {
                Ok(n) => Some(n),
                Err(_) if may_be_instant => {
                    let ts = s.parse::<jiff::Timestamp>().ok()?;
                    return Some(ts.as_millisecond() as f64 / 1000.0 - now);
                }
                Err(_) => None,
            }
        }
        _ => None,
    }?;
    if !may_be_instant {
        return Some(n);
    }
    // Past any plausible lifetime it is an instant: epoch milliseconds, or epoch seconds.
    Some(if n > 1e12 {
        n / 1000.0 - now
    } else if n > 1e9 {
        n - now
    } else {
        n
    })
}

/// The `exp` claim of a JWT (`header.payload.signature`, base64url), if `token` is one.
fn jwt_exp(token: &str) -> Option<f64> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let claims: Value = serde_json::from_slice(&base64url(payload)?).ok()?;
    claims["exp"].as_f64()
}

/// Decodes unpadded (or padded) base64url.
fn base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_764_400_000.0;

    #[test]
    fn each_documented_shape_of_the_lifetime_is_read() {
        let l = |answer: Value| lifetime_secs(&answer, "opaque", NOW, 900.0);
        assert_eq!(l(json!({"expires_in": 3600})), 3600.0, "Crego's expires_in");
        assert_eq!(l(json!({"expiry": "1800"})), 1800.0, "a lifetime as a string");
        assert_eq!(l(json!({"expiry": 600})), 600.0);
        assert_eq!(l(json!({"expiry": NOW + 1200.0})), 1200.0, "an end in epoch seconds");
        assert_eq!(
            l(json!({"expiry": format!("{}", (NOW + 300.0) * 1000.0)})),
            300.0,
            "in ms"
        );
        let end = jiff::Timestamp::from_second(NOW as i64 + 450).unwrap().to_string();
        assert_eq!(l(json!({"expiry": end})), 450.0, "an RFC 3339 end");
        assert_eq!(l(json!({"api_key": "x"})), 900.0, "none: the documented default");
        assert_eq!(l(json!({"expiry": "soon"})), 900.0, "unreadable: the default");
        assert_eq!(l(json!({"expiry": NOW - 10.0})), 900.0, "already over: the default");
        assert_eq!(l(json!({"expires_in": 10_000_000})), 86_400.0, "capped at a day");
    }

    #[test]
    fn a_jwt_says_when_it_ends() {
        // {"alg":"none"} . {"sub":"c","exp":NOW+700} . (no signature)
        let payload = format!("{{\"sub\":\"c\",\"exp\":{}}}", NOW as i64 + 700);
        let token = format!("eyJhbGciOiJub25lIn0.{}.", encode(payload.as_bytes()));
        assert_eq!(lifetime_secs(&json!({}), &token, NOW, 900.0), 700.0);
        assert_eq!(
            lifetime_secs(&json!({"expires_in": 60}), &token, NOW, 900.0),
            60.0,
            "the answer first"
        );
    }

    fn encode(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut s = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.iter().fold(0u32, |a, &c| (a << 8) | u32::from(c)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        s
    }
}
