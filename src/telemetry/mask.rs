//! Personal-data masking for logs and operator output: by key in payloads, by shape in text.

use serde_json::Value;

/// How one personal field is shown when masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The last 4 digits of each number (`******5926`): enough to tell two apart.
    LastFour,
    /// The first letter of each word (`P*** I***`): enough to recognise a borrower.
    Initials,
    /// Nothing (`****`).
    Hidden,
}

/// The personal fields, by exact key (in Credgenics payloads, Crego documents, LMS records),
/// and how each is shown: the one list printed payloads (`--dry-run`, `preview`, `doctor`,
/// dead letters) and logs go by. Everything else is shown as is, after a pass by value
/// ([`mask_values`]) that catches a phone number, PAN, Aadhaar or e-mail in any other field.
pub const PERSONAL_FIELDS: &[(&str, Shown)] = &[
    // phones
    ("applicant_contact_number", Shown::LastFour),
    ("co_applicant_contact_number", Shown::LastFour),
    ("loan_regional_manager_contact_number", Shown::LastFour),
    ("contact_number", Shown::LastFour),
    ("mobile", Shown::LastFour),
    ("phone", Shown::LastFour),
    ("sms_mobile", Shown::LastFour),
    // e-mails
    ("applicant_email", Shown::Hidden),
    ("co_applicant_email", Shown::Hidden),
    ("loan_regional_manager_contact_email", Shown::Hidden),
    ("email", Shown::Hidden),
    // identity documents
    ("applicant_pan_number", Shown::Hidden),
    ("applicant_aadhar_number", Shown::Hidden),
    ("pan", Shown::Hidden),
    ("pan_number", Shown::Hidden),
    ("aadhar", Shown::Hidden),
    ("aadhaar", Shown::Hidden),
    ("aadhar_number", Shown::Hidden),
    ("aadhaar_number", Shown::Hidden),
    // names
    ("applicant_name", Shown::Initials),
    ("co_applicant_name", Shown::Initials),
    ("credit_account_holder_name", Shown::Initials),
    ("account_holder_name", Shown::Initials),
    ("name_at_bank", Shown::Initials),
    ("document_signature_name", Shown::Initials),
    ("name", Shown::Initials),
    // birth dates and addresses
    ("applicant_dob", Shown::Hidden),
    ("co_applicant_dob", Shown::Hidden),
    ("dob", Shown::Hidden),
    ("applicant_address", Shown::Hidden),
    ("applicant_address_text", Shown::Hidden),
    ("co_applicant_address", Shown::Hidden),
    ("co_applicant_address_text", Shown::Hidden),
    ("address", Shown::Hidden),
    ("address_from_aadhar", Shown::Hidden),
    ("applicant_pincode", Shown::Hidden),
    ("co_applicant_pincode", Shown::Hidden),
    ("pincode", Shown::Hidden),
];

/// Endings that make any key a personal field (`alternate_mobile`, `reference_contact_number`,
/// `credit_account_number`, …): the documents name the same data under many prefixes. Not
/// `_name`: `company_name`, `bank_name` and `product_name` are not personal.
pub const PERSONAL_ENDINGS: &[(&str, Shown)] = &[
    ("contact_number", Shown::LastFour),
    ("mobile", Shown::LastFour),
    ("mobile_number", Shown::LastFour),
    ("phone_number", Shown::LastFour),
    ("_email", Shown::Hidden),
    ("_pan_number", Shown::Hidden),
    ("_aadhar_number", Shown::Hidden),
    ("_aadhaar_number", Shown::Hidden),
    ("_address", Shown::Hidden),
    ("_address_text", Shown::Hidden),
    ("_pincode", Shown::Hidden),
    ("_dob", Shown::Hidden),
    ("_latitude", Shown::Hidden),
    ("_longitude", Shown::Hidden),
    ("account_number", Shown::LastFour),
];

/// How `key` is shown, if it is a personal field: listed by name, or by its ending.
pub fn personal(key: &str) -> Option<Shown> {
    let lower = key.to_ascii_lowercase();
    PERSONAL_FIELDS
        .iter()
        .find(|(k, _)| *k == lower)
        .or_else(|| PERSONAL_ENDINGS.iter().find(|(e, _)| lower.ends_with(e)))
        .map(|(_, shown)| *shown)
}

fn initials(s: &str) -> String {
    s.split_whitespace()
        .map(|w| w.chars().next().map(|c| format!("{c}***")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Masks a whole value of a personal field (an address object, a list of phones) as its kind.
fn mask_as(v: &Value, shown: Shown) -> Value {
    match v {
        Value::String(s) => Value::String(match shown {
            Shown::LastFour => mask_phones(s),
            Shown::Initials => initials(s),
            Shown::Hidden => mask_all(s),
        }),
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_as(x, shown)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), mask_as(x, shown))).collect()),
        Value::Null => Value::Null,
        _ => Value::String("****".into()),
    }
}

/// Returns a copy with every field of [`PERSONAL_FIELDS`] masked as listed, and personal data
/// found by its shape in any other string ([`mask_values`]).
pub fn mask_payload(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let masked = match (personal(k), v) {
                        (Some(shown), v) => mask_as(v, shown),
                        // By value as well: a PAN in `tags`, a phone number in a note.
                        (None, Value::String(s)) => Value::String(mask_values(s)),
                        (None, other) => mask_payload(other),
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(mask_payload).collect()),
        Value::String(s) => Value::String(mask_values(s)),
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
        let v = json!({"tags": "vip,ADJIY3516D", "remarks": "Ram 9805265926", "loan_id": "CL000123",
            "lead": "00001ead-0000-4000-8000-000000000002",
            "note": "aadhaar 235498671293 pan ADJIY-3516-D", "total_loan_amount": 50000});
        let m = mask_payload(&v);
        assert_eq!(m["tags"], "vip,**********");
        assert_eq!(m["remarks"], "Ram ******5926");
        assert_eq!(m["loan_id"], "CL000123");
        assert_eq!(m["lead"], "00001ead-0000-4000-8000-000000000002");
        assert_eq!(m["note"], "aadhaar ********1293 pan ************");
        assert_eq!(
            mask_digits("rejected: applicant_pan_number ADJIY3516D invalid"),
            "rejected: applicant_pan_number ********** invalid"
        );
    }

    /// Regression (issue 15): masking by key substring hid `company` (it contains "pan") and
    /// showed `applicant_name`. The list is explicit now.
    #[test]
    fn masks_by_the_explicit_list_not_by_substring() {
        let v = json!({"company": "Acme Finance", "company_id": "c-1", "applicant_name": "Priya  Iyer",
            "applicant_address": {"line": "12 MG Road", "city": "Pune"}, "applicant_dob": "1990-01-01",
            "name": "Ravi", "expand": "x", "Mobile": "9876543210", "phone_numbers": ["9876543210"]});
        let m = mask_payload(&v);
        assert_eq!(m["company"], "Acme Finance");
        assert_eq!(m["company_id"], "c-1");
        assert_eq!(m["expand"], "x");
        assert_eq!(m["applicant_name"], "P*** I***");
        assert_eq!(m["name"], "R***");
        assert_eq!(m["applicant_address"], json!({"line": "****", "city": "****"}));
        assert_eq!(m["applicant_dob"], "****");
        assert_eq!(m["Mobile"], "******3210");
        // Not listed, caught by its shape.
        assert_eq!(m["phone_numbers"][0], "******3210");
        // By ending: the same data under other prefixes.
        let m = mask_payload(
            &json!({"alternate_mobile": "9876543210", "reference_address_text": "12 MG Road",
            "credit_account_number": "50100012345678", "reference_pincode": 411001, "bank_name": "HDFC"}),
        );
        assert_eq!(m["alternate_mobile"], "******3210");
        assert_eq!(m["reference_address_text"], "****");
        assert_eq!(m["credit_account_number"], "**********5678");
        assert_eq!(m["reference_pincode"], "****");
        assert_eq!(m["bank_name"], "HDFC");
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
