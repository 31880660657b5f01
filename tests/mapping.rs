//! `mapping test`: the shipped fixtures (input documents built from the documented examples)
//! map to their expected payloads; a changed expectation or a changed mapping is caught.

mod common;

use std::process::Command;

use common::binary;

fn fixture(name: &str) -> String {
    format!("{}/fixtures/mapping/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn mapping_test(extra: &[&str], kind: &str, expected: &str) -> (i32, String) {
    let mut args: Vec<&str> = extra.to_vec();
    let input = fixture(&format!("{kind}_input.json"));
    args.extend(["mapping", "test", "--kind", kind, &input, "--expected", expected]);
    let out = Command::new(binary())
        .args(&args)
        .env_remove("CCSYNC_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

#[test]
fn the_shipped_fixtures_pass() {
    for kind in ["loan", "payment", "record"] {
        let (code, out) = mapping_test(&[], kind, &fixture(&format!("{kind}_expected.json")));
        assert_eq!(code, 0, "{kind}: {out}");
        assert!(out.contains("mapping matches"));
    }
}

#[test]
fn a_modified_expected_file_fails_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("loan_expected.json")).unwrap();
    let changed = text.replace("\"total_claim_amount\": 13442.5", "\"total_claim_amount\": 13442.51");
    assert_ne!(text, changed);
    let path = dir.path().join("expected.json");
    std::fs::write(&path, changed).unwrap();
    let (code, out) = mapping_test(&[], "loan", path.to_str().unwrap());
    assert_eq!(code, 1);
    assert!(
        out.contains("defaults.0.total_claim_amount: expected 13442.51, got 13442.5"),
        "{out}"
    );
}

#[test]
fn a_config_override_is_applied_and_a_broken_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[mapping.loan]\nloan_type = '\"Supply Chain Finance\"'\n").unwrap();
    let (code, out) = mapping_test(
        &["--config", config.to_str().unwrap()],
        "loan",
        &fixture("loan_expected.json"),
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("loan_type: expected \"Business Loan\", got \"Supply Chain Finance\""),
        "{out}"
    );

    std::fs::write(&config, "[mapping.record]\nremark = '.utr +'\n").unwrap();
    let (code, out) = mapping_test(
        &["--config", config.to_str().unwrap()],
        "record",
        &fixture("record_expected.json"),
    );
    assert_eq!(code, 2);
    assert!(
        out.contains("mapping.record.remark") && out.contains("does not compile"),
        "{out}"
    );

    let missing = dir.path().join("nope.toml");
    let (code, _) = mapping_test(
        &["--config", missing.to_str().unwrap()],
        "record",
        &fixture("record_expected.json"),
    );
    assert_eq!(
        code, 2,
        "a named config that does not exist is an error, not the defaults"
    );
}

/// Regression (issue 15): a mapping that produced `29/11/2026` passed `mapping test` and failed
/// in production, because the test skipped the preflight. It runs it now, and takes a folder of
/// cases; `local_date` of a missing field is an error, not `1970-01-01`.
#[test]
fn a_folder_of_cases_runs_the_preflight_and_local_date_of_null_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).unwrap();
    for kind in ["loan", "payment"] {
        std::fs::copy(
            fixture(&format!("{kind}_input.json")),
            cases.join(format!("{kind}.json")),
        )
        .unwrap();
    }
    std::fs::copy(fixture("loan_expected.json"), cases.join("loan.expected.json")).unwrap();
    let config = dir.path().join("c.toml");
    let run = |config_text: &str, kind: &str| {
        std::fs::write(&config, config_text).unwrap();
        let out = Command::new(binary())
            .args(["--config", config.to_str().unwrap(), "mapping", "test", "--kind", kind])
            .arg(&cases)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap(), text)
    };
    // The loan kind over both inputs: the loan case matches; the payment document is no loan.
    let (code, out) = run("", "loan");
    assert!(out.contains("ok    loan"), "{out}");
    assert!(out.contains("FAIL  payment"), "{out}");
    assert!(out.contains("2 case(s): 1 passed, 1 failed"), "{out}");
    assert_eq!(code, 1);

    // A date in the wrong shape maps, but the preflight refuses it, naming the field.
    std::fs::remove_file(cases.join("payment.json")).unwrap();
    std::fs::remove_file(cases.join("loan.expected.json")).unwrap();
    let (code, out) = run("[mapping.default]\ndate_of_default = '\"29/11/2026\"'\n", "loan");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  loan") && out.contains("preflight refuses") && out.contains("date_of_default"),
        "{out}"
    );

    // local_date of a field that is not there fails the case instead of dating it 1970.
    let (code, out) = run("[mapping.loan]\ntags = '.no_such_field | local_date'\n", "loan");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("local_date of null") && !out.contains("1970-01-01"),
        "{out}"
    );
    let (code, out) = run("", "loan");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok    loan (mapped and checked; no expected payload)"),
        "{out}"
    );
}
