//! The shipped systemd units: `systemd-analyze verify` accepts both (the template as an
//! instance), and `systemd-analyze security --offline=yes` rates their exposure at 2.0 or lower.
//! `.ci/run` installs systemd's tools where they are missing.

use std::path::Path;
use std::process::Command;

const UNITS: [(&str, &str); 2] = [
    ("crego-credgenics-sync.service", "crego-credgenics-sync.service"),
    ("crego-credgenics-sync@.service", "crego-credgenics-sync@acme.service"),
];

/// Copies the units into `dir`, pointing ExecStart at the binary under test (verify checks that
/// the command exists).
fn install(dir: &Path) -> Vec<String> {
    UNITS
        .iter()
        .map(|(src, dst)| {
            let text =
                std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(src)).unwrap();
            let text = text.replace(
                "/usr/local/bin/crego-credgenics-sync",
                env!("CARGO_BIN_EXE_crego-credgenics-sync"),
            );
            let path = dir.join(dst);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        })
        .collect()
}

fn analyze_available() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("SKIP_SYSTEMD_TESTS").is_none() {
        panic!("systemd-analyze is not installed (apt-get install systemd), or set SKIP_SYSTEMD_TESTS=1");
    }
    found
}

#[test]
fn systemd_analyze_verify_accepts_both_units() {
    if !analyze_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for unit in install(dir.path()) {
        let out = Command::new("systemd-analyze")
            .args(["verify", &unit])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("crego-credgenics-sync"),
            "{unit}: {err}"
        );
    }
}

#[test]
fn exposure_is_rated_2_or_lower() {
    if !analyze_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for unit in install(dir.path()) {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", &unit])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("{text}"));
        let score: f64 = line
            .split(": ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(score <= 2.0, "{unit}: exposure {score}");
    }
}
