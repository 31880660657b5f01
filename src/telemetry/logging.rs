//! The log subscriber: JSON lines when stderr is not a terminal (journald, a file), human text on
//! one; `RUST_LOG` wins over `log.level`.
//!
//! - **Flat JSON.** One object per line: `timestamp`, `level`, `target` (the part of the daemon:
//!   `ccsync::flows`, `ccsync::payments`, …), `message`, the event's fields, and the fields of
//!   every span it runs in — so each line of a cycle carries its `job` and `run_id` at the top
//!   level (`jq 'select(.run_id == "…")'` gathers one cycle).
//! - **journald priorities.** When stderr is the journal (systemd sets `JOURNAL_STREAM` to its
//!   device and inode), each line starts with a `<N>` syslog priority prefix, which journald
//!   strips and files as the line's priority (`SyslogLevelPrefix=`, on by default): `journalctl
//!   -p warning` then finds warnings and errors. Anywhere else lines are left as they are.

use std::fmt;
use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (journald), human-readable on one.
    Auto,
    Json,
    Human,
}

/// Installs the global subscriber (a second call keeps the first: tests, demo).
pub fn init_logging(level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{level},refinery_core=warn")));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let writer = Stderr {
        journal: stderr_is_journal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = if json {
        builder.fmt_fields(JsonFields::new()).event_format(FlatJson).try_init()
    } else {
        builder.with_target(false).try_init()
    };
}

/// `text` as error lines for stderr: under journald each line carries the error priority, so a
/// refused config or a listener that cannot bind shows in `journalctl -p err` (`main.rs` prints
/// how a command ended through this).
pub fn error_text(text: &str) -> String {
    if !stderr_is_journal() {
        return text.to_string();
    }
    text.lines().map(|l| format!("<3>{l}")).collect::<Vec<_>>().join("\n")
}

/// The syslog priority journald files a line of this level under.
fn priority(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        _ => "<7>",
    }
}

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` names its `device:inode`.
fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata("/proc/self/fd/2").or_else(|_| std::fs::metadata("/dev/stderr")) else {
            return false;
        };
        stream == format!("{}:{}", meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = stream;
        false
    }
}

/// stderr, with the journal's priority prefix when it is the journal.
#[derive(Clone, Copy)]
struct Stderr {
    journal: bool,
}

/// One event's writer: stderr held for the whole event (no other line lands inside it), the
/// prefix (if any) before its first byte.
struct EventWriter {
    err: std::io::StderrLock<'static>,
    prefix: Option<&'static str>,
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(p) = self.prefix.take() {
            self.err.write_all(p.as_bytes())?;
        }
        self.err.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.err.flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            err: std::io::stderr().lock(),
            prefix: None,
        }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> EventWriter {
        EventWriter {
            err: std::io::stderr().lock(),
            prefix: self.journal.then(|| priority(meta.level())),
        }
    }
}

/// One flat JSON object per event (see the module's header).
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut map = Map::new();
        map.insert("timestamp".into(), Value::String(jiff::Timestamp::now().to_string()));
        map.insert("level".into(), Value::String(meta.level().to_string()));
        map.insert("target".into(), Value::String(meta.target().to_string()));
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&fields.fields)
                {
                    map.extend(o);
                }
            }
        }
        event.record(&mut Fields(&mut map));
        writeln!(w, "{}", Value::Object(map))
    }
}

/// Collects an event's fields into the line's object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().into(), Value::String(v.into()));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.0.insert(f.name().into(), Value::String(format!("{v:?}")));
    }
}
