//! Personal-data masking for logs and operator output: by key in payloads, by shape in text.

use serde_json::Value;

/// Keys whose values are personal data, masked in printed payloads.
const PHONE_KEYS: &[&str] = &["contact_number", "mobile", "phone"];
const SECRET_KEYS: &[&str] = &["pan", "aadhar", "aadhaar", "email"];

/// Returns a copy with phone numbers cut to their last 4 digits and PAN, Aadhaar and e-mail masked.
pub fn mask_payload(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let lk = k.to_ascii_lowercase();
                    let masked = match v {
                        Value::String(s) if PHONE_KEYS.iter().any(|p| lk.contains(p)) => Value::String(mask_phones(s)),
                        Value::String(s) if SECRET_KEYS.iter().any(|p| lk.contains(p)) => Value::String(mask_all(s)),
                        // By value as well: a PAN in `tags`, a phone number in a name.
                        Value::String(s) => Value::String(mask_values(s)),
                        other => mask_payload(other),
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(mask_payload).collect()),
        other => other.clone(),
    }
}

/// `9805265926,9814274470` → `******5926,******4470`
pub fn mask_phones(s: &str) -> String {
    s.split(',')
        .map(|p| {
            let p = p.trim();
            let n = p.chars().count();
            if n <= 4 {
                "*".repeat(n)
            } else {
                format!("{}{}", "*".repeat(n - 4), p.chars().skip(n - 4).collect::<String>())
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn mask_all(s: &str) -> String {
    if s.is_empty() { String::new() } else { "****".into() }
}

/// Masks personal data in free text bound for logs and operator output: runs of 6 or more digits
/// (phone, Aadhaar, account numbers) — `[9876543210]` → `[******3210]` — and the local part of
/// anything shaped like an e-mail address — `priya.iyer@x.in` → `p***@x.in` (Credgenics and the
/// preflight quote invalid addresses back in their reasons).
pub fn mask_digits(text: &str) -> String {
    mask_pans(&mask_emails(&mask_digit_runs(text)))
}

/// Personal data by its shape wherever it stands in a value: PANs, e-mail addresses, and runs of
/// exactly 10 (a mobile number) or 12 digits (an Aadhaar number). Ids and amounts keep their
/// other digits.
pub fn mask_values(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    // A run joined to letters or hyphens is part of an id (a UUID's last group), not a number.
    let joined = |c: Option<&char>| c.is_some_and(|c| c.is_alphabetic() || *c == '-');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let standalone = !joined(start.checked_sub(1).and_then(|p| chars.get(p))) && !joined(chars.get(i));
        if standalone && (run.len() == 10 || run.len() == 12) {
            out.push_str(&mask_phones(&run));
        } else {
            out.push_str(&run);
        }
    }
    mask_pans(&mask_emails(&out))
}

/// PANs (`ABCDE1234F`, also written `ABCDE-1234-F`) as `**********`, whatever surrounds them.
fn mask_pans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(len) = pan_at(&chars[i..])
            && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
            && chars.get(i + len).is_none_or(|c| !c.is_ascii_alphanumeric())
        {
            out.push_str(&"*".repeat(len));
            i += len;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The length of a PAN starting at `c` (5 letters, 4 digits, 1 letter; hyphens allowed between
/// the groups), if one does.
fn pan_at(c: &[char]) -> Option<usize> {
    let mut i = 0;
    let take = |n: usize, ok: fn(&char) -> bool, i: &mut usize| -> Option<()> {
        for _ in 0..n {
            ok(c.get(*i)?).then_some(())?;
            *i += 1;
        }
        Some(())
    };
    take(5, char::is_ascii_uppercase, &mut i)?;
    if c.get(i) == Some(&'-') {
        i += 1;
    }
    take(4, char::is_ascii_digit, &mut i)?;
    if c.get(i) == Some(&'-') {
        i += 1;
    }
    take(1, char::is_ascii_uppercase, &mut i)?;
    Some(i)
}

fn mask_emails(text: &str) -> String {
    let word_char = |c: char| c.is_alphanumeric() || "._%+-*".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let start = rest[..at].rfind(|c: char| !word_char(c)).map_or(0, |i| i + 1);
        let local = &rest[start..at];
        out.push_str(&rest[..start]);
        if let Some(first) = local.chars().next() {
            out.push(first);
            out.push_str("***");
        }
        out.push('@');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 6 {
            out.push_str(&mask_phones(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            run.push(ch);
        } else {
            flush(&mut run, &mut out);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// An error's message with personal data masked by value (a partner's answer can be quoted in
/// it).
pub fn masked(e: &dyn std::fmt::Display) -> String {
    mask_digits(&e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_personal_data() {
        let v = json!({"applicant_contact_number": "9805265926,9814274470", "applicant_pan_number": "ADJIY3516D",
            "applicant_email": "a@b.in", "co_applicant": [{"co_applicant_contact_number": "9814274470"}], "loan_id": "X1"});
        let m = mask_payload(&v);
        assert_eq!(m["applicant_contact_number"], "******5926,******4470");
        assert_eq!(m["applicant_pan_number"], "****");
        assert_eq!(m["applicant_email"], "****");
        assert_eq!(m["co_applicant"][0]["co_applicant_contact_number"], "******4470");
        assert_eq!(m["loan_id"], "X1");
    }

    #[test]
    fn masks_personal_data_by_value_wherever_it_stands() {
        let v = json!({"tags": "vip,ADJIY3516D", "applicant_name": "Ram 9805265926", "loan_id": "CL000123",
            "lead": "00001ead-0000-4000-8000-000000000002",
            "note": "aadhaar 235498671293 pan ADJIY-3516-D", "total_loan_amount": 50000});
        let m = mask_payload(&v);
        assert_eq!(m["tags"], "vip,**********");
        assert_eq!(m["applicant_name"], "Ram ******5926");
        assert_eq!(m["loan_id"], "CL000123");
        assert_eq!(m["lead"], "00001ead-0000-4000-8000-000000000002");
        assert_eq!(m["note"], "aadhaar ********1293 pan ************");
        assert_eq!(
            mask_digits("rejected: applicant_pan_number ADJIY3516D invalid"),
            "rejected: applicant_pan_number ********** invalid"
        );
    }

    #[test]
    fn masks_digit_runs_in_text() {
        assert_eq!(
            mask_digits("Invalid Mobile numbers, [9876543210]"),
            "Invalid Mobile numbers, [******3210]"
        );
        assert_eq!(mask_digits("2026-11-01 dpd 45"), "2026-11-01 dpd 45");
        assert_eq!(
            mask_digits("Invalid Emails, [priya.iyer@example.in, x@y]"),
            "Invalid Emails, [p***@example.in, x***@y]"
        );
    }
}
