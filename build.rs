// The migrations are embedded at compile time (refinery's `embed_migrations!`): rebuild when one
// is added or changed, not only when Rust sources change. The commit goes into `build_info`
// (not under a `CCSYNC_` name: cargo also sets it when running tests, where figment would read
// it as a config key).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CREGO_SYNC_BUILD_COMMIT={commit}");
}
