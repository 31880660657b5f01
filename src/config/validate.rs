//! From the raw form to the checked one, collecting every problem (each naming its key).

use std::path::PathBuf;
use std::time::Duration;

use crate::mapping::{self};

use super::checked::*;
use super::checker::Checker;
use super::error::ConfigError;
use super::raw::*;

/// Credgenics' documented token exchange (`api-docs/secondary/`), at the root of its host.
const CG_TOKEN_PATH: &str = "/user/public/access-token";

impl RawConfig {
    /// Checks everything and produces the runnable form, or every problem found.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut c = Checker { problems: Vec::new() };
        let RawConfig {
            state,
            crego,
            credgenics,
            sync,
            webhook,
            mapping: raw_mapping,
            log,
            daemon,
            admin,
        } = self;
        if state.retain_days > 3650 {
            c.problem(
                "state.retain_days",
                "must be at most 3650 (ten years); 0 keeps everything",
            );
        }
        let admin_listen = c.addr("admin.listen", &admin.listen);
        // (Port 0 asks for a free port each: tests and the sandbox.)
        if admin.listen == webhook.listen && !admin.listen.ends_with(":0") {
            c.problem(
                "admin.listen",
                format!(
                    "`{}` is webhook.listen too: the two listeners need their own addresses",
                    admin.listen
                ),
            );
        }
        if daemon.shutdown_grace_secs == 0 || daemon.shutdown_grace_secs > 3600 {
            c.problem("daemon.shutdown_grace_secs", "must be between 1 and 3600");
        }
        if daemon.stuck_after_secs < 60 {
            c.problem("daemon.stuck_after_secs", "must be at least 60");
        }
        if daemon.job_stall_secs == 0 {
            c.problem("daemon.job_stall_secs", "must be at least 1");
        }

        if state.path.trim().is_empty() {
            c.problem("state.path", "is required");
        }

        let crego_url = c.url("crego.base_url", &crego.base_url, crego.allow_insecure_http);
        let crego_token = if let Some(user) = crego.username.clone().filter(|u| !u.trim().is_empty()) {
            if crego.bearer_token.is_some() || crego.bearer_token_file.is_some() {
                c.problem(
                    "crego.username",
                    "set either bearer_token or username/password, not both",
                );
            }
            c.path_template("crego.token_path", &crego.token_path, None);
            c.path_template("crego.refresh_path", &crego.refresh_path, None);
            c.secret("crego", "password", &crego.password, &crego.password_file, true)
                .map(|secret| Credential::Exchange {
                    id: user,
                    secret,
                    token_path: crego.token_path.clone(),
                    token_url: None,
                    refresh_path: Some(crego.refresh_path.clone()),
                    lifetime_secs: None,
                })
        } else {
            c.secret(
                "crego",
                "bearer_token",
                &crego.bearer_token,
                &crego.bearer_token_file,
                true,
            )
            .map(Credential::Static)
        };
        let crego_limits = c.limits(
            "crego",
            crego.requests_per_second,
            crego.max_in_flight,
            crego.timeout_secs,
            crego.connect_timeout_secs,
            crego.max_retries,
            crego.max_response_bytes,
            crego.max_retry_after_secs,
        );
        if crego.page_size == 0 || crego.page_size > 1000 {
            c.problem("crego.page_size", "must be between 1 and 1000");
        }
        c.path_template("crego.line_details_path", &crego.line_details_path, None);
        c.path_template("crego.lead_path", &crego.lead_path, Some("{lead_id}"));
        c.path_template("crego.programs_path", &crego.programs_path, Some("{lead_id}"));
        c.path_template("crego.records_path", &crego.records_path, None);
        // Either list may be left empty by a tenant without loans or without topups.
        for (key, path) in [
            ("crego.line_loans_path", &crego.line_loans_path),
            ("crego.line_topups_path", &crego.line_topups_path),
        ] {
            if !path.is_empty() {
                c.path_template(key, path, None);
            }
        }
        for (key, name) in [
            ("updated_since", &crego.filters.updated_since),
            ("ordering", &crego.filters.ordering),
            ("record_type", &crego.filters.record_type),
            ("utr", &crego.filters.utr),
        ] {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.[]".contains(ch))
            {
                c.problem(
                    &format!("crego.filters.{key}"),
                    format!("`{name}` is not a query parameter name (letters, digits, _ - . [ ])"),
                );
            }
        }

        c.path_template("credgenics.loan_path", &credgenics.loan_path, Some("{loan_id}"));
        c.path_template("credgenics.payments_path", &credgenics.payments_path, Some("{loan_id}"));
        c.path_template(
            "credgenics.transaction_path",
            &credgenics.transaction_path,
            Some("{transaction_id}"),
        );
        c.path_template(
            "credgenics.transaction_path",
            &credgenics.transaction_path,
            Some("{client_customer_id}"),
        );
        c.absent("crego", &crego.absent_statuses, &crego.absent_message);
        c.absent("credgenics", &credgenics.absent_statuses, &credgenics.absent_message);
        if credgenics.payment_amount_decimals.is_some_and(|d| d > 6) {
            c.problem("credgenics.payment_amount_decimals", "must be between 0 and 6");
        }
        for s in &credgenics.extra_final_statuses {
            if s.trim().is_empty() {
                c.problem("credgenics.extra_final_statuses", "holds an empty status");
            }
        }
        let cg_url = c.url(
            "credgenics.base_url",
            &credgenics.base_url,
            credgenics.allow_insecure_http,
        );
        let cg_token = if let Some(id) = credgenics.client_id.clone().filter(|u| !u.trim().is_empty()) {
            if credgenics.auth_token.is_some() || credgenics.auth_token_file.is_some() {
                c.problem(
                    "credgenics.client_id",
                    "set either auth_token or client_id/client_secret, not both",
                );
            }
            let token_url = match (&credgenics.token_url, &credgenics.token_path) {
                (Some(_), Some(_)) => {
                    c.problem("credgenics.token_url", "set token_url or token_path, not both");
                    None
                }
                (Some(u), None) => c.url("credgenics.token_url", u, credgenics.allow_insecure_http),
                (None, Some(p)) => {
                    c.path_template("credgenics.token_path", p, None);
                    None
                }
                // The documented exchange is at the host's root, beside `/recovery`.
                (None, None) => cg_url.as_ref().and_then(|u| u.join(CG_TOKEN_PATH).ok()),
            };
            if let Some(secs) = credgenics.token_lifetime_secs
                && !(60..=86_400).contains(&secs)
            {
                c.problem(
                    "credgenics.token_lifetime_secs",
                    format!("{secs} is outside 60..=86400 (Credgenics issues tokens for at most a day)"),
                );
            }
            c.secret(
                "credgenics",
                "client_secret",
                &credgenics.client_secret,
                &credgenics.client_secret_file,
                true,
            )
            .map(|secret| Credential::Exchange {
                id,
                secret,
                token_path: credgenics.token_path.clone().unwrap_or_else(|| CG_TOKEN_PATH.into()),
                token_url,
                refresh_path: None,
                lifetime_secs: credgenics.token_lifetime_secs,
            })
        } else {
            c.secret(
                "credgenics",
                "auth_token",
                &credgenics.auth_token,
                &credgenics.auth_token_file,
                true,
            )
            .map(Credential::Static)
        };
        let cg_limits = c.limits(
            "credgenics",
            credgenics.requests_per_second,
            credgenics.max_in_flight,
            credgenics.timeout_secs,
            credgenics.connect_timeout_secs,
            credgenics.max_retries,
            credgenics.max_response_bytes,
            credgenics.max_retry_after_secs,
        );
        let mode = match credgenics.mode.as_str() {
            "lending" => CredgenicsMode::Lending,
            "credit_line" => CredgenicsMode::CreditLine,
            other => {
                c.problem(
                    "credgenics.mode",
                    format!("`{other}` is not a mode: `lending` (the default) or `credit_line`"),
                );
                CredgenicsMode::Lending
            }
        };
        if credgenics.amount_decimals > 6 {
            c.problem("credgenics.amount_decimals", "must be between 0 and 6");
        }
        if let Some(id) = &credgenics.company_id
            && id.trim().is_empty()
        {
            c.problem("credgenics.company_id", "is empty: remove the key or give the id");
        }

        let tz = match jiff::tz::TimeZone::get(&sync.timezone) {
            Ok(tz) => Some(tz),
            Err(e) => {
                c.problem(
                    "sync.timezone",
                    format!("`{}` is not a known time zone: {e}", sync.timezone),
                );
                None
            }
        };
        if sync.min_dpd < 1 {
            c.problem("sync.min_dpd", "must be at least 1");
        }
        if sync.cursor_overlap_secs > 7 * 86400 {
            c.problem("sync.cursor_overlap_secs", "must be at most 604800 (7 days)");
        }
        if sync.retry_base_secs > sync.retry_max_secs {
            c.problem("sync.retry_base_secs", "must not exceed sync.retry_max_secs");
        }
        if sync.line_wait_secs > 86400 {
            c.problem("sync.line_wait_secs", "must be at most 86400 (a day)");
        }
        if sync.max_lookups == 0 {
            c.problem("sync.max_lookups", "must be at least 1");
        }
        let s = &sync.schedules;
        let schedules = (
            c.cron("sync.schedules.place_loans", &s.place_loans),
            c.cron("sync.schedules.push_repayments", &s.push_repayments),
            c.cron("sync.schedules.poll_recoveries", &s.poll_recoveries),
            c.cron("sync.schedules.reconcile", &s.reconcile),
        );

        let listen = c.addr("webhook.listen", &webhook.listen);
        // Credgenics calls it from the internet: https, unless a loopback address for a test.
        let public_url = webhook
            .public_url
            .as_deref()
            .and_then(|u| c.url("webhook.public_url", u, false));
        let webhook_token = c.secret("webhook", "token", &webhook.token, &webhook.token_file, false);
        if webhook.max_amount == 0 {
            c.problem("webhook.max_amount", "must be at least 1");
        }
        if !(1..=65_536).contains(&webhook.max_connections) {
            c.problem("webhook.max_connections", "must be between 1 and 65536");
        }
        // Below the 10 s a webhook's body may take, a slow body is cut rather than answered 408.
        if !(1..=3600).contains(&webhook.idle_timeout_secs) {
            c.problem("webhook.idle_timeout_secs", "must be between 1 and 3600");
        }

        if !(10..=60_000).contains(&raw_mapping.budget_ms) {
            c.problem("mapping.budget_ms", "must be between 10 and 60000 (milliseconds)");
        }
        let budget = Duration::from_millis(raw_mapping.budget_ms.clamp(10, 60_000));
        let mapping = Mapping {
            loan: c
                .fieldset("loan", mapping::DEFAULT_LOAN, &raw_mapping.loan)
                .with_budget(budget),
            default: c
                .fieldset("default", mapping::DEFAULT_DEFAULT, &raw_mapping.default)
                .with_budget(budget),
            payment: c
                .fieldset("payment", mapping::DEFAULT_PAYMENT, &raw_mapping.payment)
                .with_budget(budget),
            record: c
                .fieldset("record", mapping::DEFAULT_RECORD, &raw_mapping.record)
                .with_budget(budget),
            transaction: {
                for key in raw_mapping.transaction.keys() {
                    if !mapping::DEFAULT_TRANSACTION.iter().any(|(k, _)| k == key) {
                        let known: Vec<&str> = mapping::DEFAULT_TRANSACTION.iter().map(|(k, _)| *k).collect();
                        c.problem(
                            &format!("mapping.transaction.{key}"),
                            format!("unknown key; the keys are {}", known.join(", ")),
                        );
                    }
                }
                c.fieldset("transaction", mapping::DEFAULT_TRANSACTION, &raw_mapping.transaction)
                    .with_budget(budget)
            },
            link: {
                use mapping::link::{DEFAULT_LINE_LINK, DEFAULT_RECORD_LINK, keys, overrides_for};
                for key in raw_mapping.link.keys() {
                    if !keys().any(|k| k == key) {
                        c.problem(
                            &format!("mapping.link.{key}"),
                            format!("unknown link; the links are {}", keys().collect::<Vec<_>>().join(", ")),
                        );
                    }
                }
                let all = &raw_mapping.link;
                mapping::link::Links {
                    line: c
                        .fieldset("link", DEFAULT_LINE_LINK, &overrides_for(DEFAULT_LINE_LINK, all))
                        .with_budget(budget),
                    record: c
                        .fieldset("link", DEFAULT_RECORD_LINK, &overrides_for(DEFAULT_RECORD_LINK, all))
                        .with_budget(budget),
                }
            },
        };

        let format = match log.format.as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            "human" => LogFormat::Human,
            other => {
                c.problem("log.format", format!("`{other}` is not one of auto, json, human"));
                LogFormat::Auto
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
            c.problem("log.level", format!("`{}` is not a log level or filter", log.level));
        }

        if !c.problems.is_empty() {
            return Err(ConfigError(c.problems));
        }
        let (Some(crego_url), Some(crego_token), Some(cg_url), Some(cg_token), Some(tz), Some(listen)) =
            (crego_url, crego_token, cg_url, cg_token, tz, listen)
        else {
            unreachable!("every None above recorded a problem");
        };
        let Some(admin_listen) = admin_listen else {
            unreachable!("every None above recorded a problem");
        };
        let (Some(place_loans), Some(push_repayments), Some(poll_recoveries), Some(reconcile)) = schedules else {
            unreachable!("every None above recorded a problem");
        };
        Ok(Config {
            state_path: PathBuf::from(state.path),
            retain_days: state.retain_days,
            crego: CregoConfig {
                base_url: crego_url,
                credential: crego_token,
                limits: crego_limits,
                page_size: crego.page_size,
                line_details_path: crego.line_details_path,
                lead_path: crego.lead_path,
                programs_path: crego.programs_path,
                records_path: crego.records_path,
                line_loans_path: crego.line_loans_path,
                line_topups_path: crego.line_topups_path,
                filters: CregoFilters {
                    updated_since: crego.filters.updated_since,
                    ordering: crego.filters.ordering,
                    record_type: crego.filters.record_type,
                    utr: crego.filters.utr,
                    account: crego.filters.account,
                },
                absent: Absent {
                    statuses: crego.absent_statuses,
                    message: crego.absent_message,
                },
            },
            credgenics: CredgenicsConfig {
                base_url: cg_url,
                credential: cg_token,
                company_id: credgenics.company_id,
                limits: cg_limits,
                amount_decimals: credgenics.amount_decimals,
                mode,
                loan_path: credgenics.loan_path,
                payments_path: credgenics.payments_path,
                transaction_path: credgenics.transaction_path,
                absent: Absent {
                    statuses: credgenics.absent_statuses,
                    message: credgenics.absent_message,
                },
                payment_amount_decimals: credgenics.payment_amount_decimals.unwrap_or(credgenics.amount_decimals),
                extra_final_statuses: credgenics.extra_final_statuses,
            },
            sync: SyncConfig {
                timezone: tz,
                min_dpd: sync.min_dpd,
                cursor_overlap_secs: sync.cursor_overlap_secs as f64,
                retry_base_secs: sync.retry_base_secs as f64,
                retry_max_secs: sync.retry_max_secs as f64,
                line_wait_secs: sync.line_wait_secs as f64,
                max_lookups: sync.max_lookups,
                schedules: Schedules {
                    place_loans,
                    push_repayments,
                    poll_recoveries,
                    reconcile,
                },
            },
            webhook: WebhookConfig {
                listen,
                token: webhook_token,
                max_amount: rust_decimal::Decimal::from(webhook.max_amount),
                max_connections: webhook.max_connections as usize,
                idle_timeout: Duration::from_secs(webhook.idle_timeout_secs),
                public_url,
            },
            mapping,
            log: LogConfig {
                level: log.level,
                format,
            },
            daemon: DaemonConfig {
                shutdown_grace: Duration::from_secs(daemon.shutdown_grace_secs),
                stuck_after_secs: daemon.stuck_after_secs as f64,
                job_stall: Duration::from_secs(daemon.job_stall_secs),
                admin_listen,
            },
        })
    }
}
