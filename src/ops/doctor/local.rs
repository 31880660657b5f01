//! The doctor's checks of this host: the state folder and the webhook listener's address (and
//! the URL Credgenics must be given).

use std::path::Path;
use std::time::Duration;

use super::verdict::Check;
use crate::config::Config;

pub(super) fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let secs = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// The state folder can take the file (and its WAL), and the file, if there, can be written:
/// what was found, or what is wrong. `check-config` asks this too.
pub(crate) fn state_writable(path: &Path) -> Result<String, String> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("{}: the folder does not exist", dir.display()));
    }
    let probe = dir.join(format!(".ccsync-probe-{}", std::process::id()));
    let wrote = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map(|_| std::fs::remove_file(&probe));
    if let Err(e) = wrote {
        return Err(format!("{}: cannot create files there: {e}", dir.display()));
    }
    if path.exists() {
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
            return Err(format!("{}: cannot be written: {e}", path.display()));
        }
        return Ok(format!("{}: writable", path.display()));
    }
    Ok(format!(
        "{}: the folder is writable (the file is created on the first run)",
        path.display()
    ))
}

/// What to change when [`state_writable`] fails.
pub(crate) const STATE_FIX: &str = "create the folder and give the service's user write access to it \
     (the unit's StateDirectory= does this), or set state.path";

/// The doctor's line for the state folder.
pub(super) fn state(path: &Path) -> Check {
    match state_writable(path) {
        Ok(detail) => Check::pass("state", detail),
        Err(detail) => Check::fail("state", detail, STATE_FIX),
    }
}

/// The URL Credgenics must call, the token it must send, and whether the listener's address is
/// served here (the daemon running) or free to take.
pub(super) async fn webhook(config: &Config, list: &mut Vec<Check>) {
    let path = crate::server::WEBHOOK_PATH;
    match (&config.webhook.public_url, config.webhook.token.is_some()) {
        (_, false) => list.push(Check::fail(
            "webhook",
            "webhook.token is not set; daemon mode refuses to start without it",
            "set webhook.token_file (or CCSYNC_WEBHOOK__TOKEN) and give Credgenics the same secret",
        )),
        (Some(url), true) => list.push(Check::pass(
            "webhook",
            format!(
                "Credgenics must POST to {}{path} with the header X-Webhook-Token",
                url.as_str().trim_end_matches('/')
            ),
        )),
        (None, true) => list.push(Check::warn(
            "webhook",
            format!("webhook.public_url is not set; Credgenics must POST to https://<public host>{path}"),
            "set webhook.public_url to the public address that reaches webhook.listen",
        )),
    }
    let addr = config.webhook.listen;
    let connect = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await;
    if matches!(connect, Ok(Ok(_))) {
        let health = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok();
        let ok = match health {
            Some(c) => c
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            None => false,
        };
        list.push(if ok {
            Check::pass("listener", format!("{addr}: the daemon answers /healthz"))
        } else {
            Check::fail(
                "listener",
                format!("{addr}: something listens there but does not answer /healthz as the daemon does"),
                "set webhook.listen to a free address, or stop what holds it",
            )
        });
        return;
    }
    match tokio::net::TcpListener::bind(addr).await {
        Ok(_) => list.push(Check::pass(
            "listener",
            format!("{addr}: free, the daemon can listen there (it is not running now)"),
        )),
        Err(e) => list.push(Check::fail(
            "listener",
            format!("{addr}: cannot listen there: {e}"),
            "set webhook.listen to an address of this host that the service may bind",
        )),
    }
}
