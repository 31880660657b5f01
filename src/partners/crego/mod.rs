//! Crego client: line details (the change stream of flow A), leads and their borrower-programs.
//! Lists are page-number paginated (design §5) and read one page at a time, never the whole book;
//! [`stream`] reads the change streams by key.

pub mod stream;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{CregoConfig, CregoFilters};
use crate::mapping::link::Links;
use crate::money;
use crate::partners::http::absent::Absent;
use crate::partners::http::path::segment;
use crate::partners::http::{Api, ApiClient, ApiError, Safety};

/// One page of a Crego list.
#[derive(Debug)]
pub struct Page {
    pub results: Vec<Value>,
    pub has_next: bool,
    pub total_pages: Option<u64>,
}

/// The fields of a line detail the sync itself reads; the whole item stays available as `raw`.
#[derive(Debug, Clone)]
pub struct LineItem {
    pub id: String,
    pub lead_id: String,
    pub borrower_program_id: String,
    pub dpd: i64,
    pub due_amount: Decimal,
    pub total_outstanding: Decimal,
    pub updated_at: f64,
    pub raw: Value,
}

impl LineItem {
    /// Reads the typed fields, its lead and borrower-program through the link expressions
    /// (`[mapping.link]`), naming the first that is missing or of the wrong type.
    pub fn from_value(raw: Value, links: &Links) -> Result<Self, String> {
        let (lead_id, borrower_program_id) = match links.line_ids(&raw) {
            Ok(ids) => ids,
            Err(e) => {
                let id = raw.get("id").and_then(Value::as_str).unwrap_or("?");
                return Err(format!("{e} (line detail {id})"));
            }
        };
        Self::with_links(raw, lead_id, borrower_program_id)
    }

    /// Reads the typed fields of a line whose lead and borrower-program are already known (a
    /// line read through its lead's `/programs/`).
    pub fn with_links(raw: Value, lead_id: String, borrower_program_id: String) -> Result<Self, String> {
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "line detail has no string `id`".to_string())?;
        let ctx = |e: String| format!("{e} (line detail {id})");
        let dpd = raw
            .get("dpd")
            .and_then(Value::as_i64)
            .ok_or_else(|| ctx("line detail has no integer `dpd`".into()))?;
        let due_amount = decimal_field(&raw, "due_amount").map_err(ctx)?;
        let total_outstanding = decimal_field(&raw, "total_outstanding").map_err(ctx)?;
        let updated_at = raw
            .get("updated_at")
            .and_then(Value::as_f64)
            .ok_or_else(|| ctx("line detail has no number `updated_at`".into()))?;
        Ok(Self {
            id,
            lead_id,
            borrower_program_id,
            dpd,
            due_amount,
            total_outstanding,
            updated_at,
            raw,
        })
    }
}

/// A JSON number read exactly as a decimal, naming the key when it is not one.
pub fn decimal_field(v: &Value, key: &str) -> Result<Decimal, String> {
    match v.get(key) {
        None => Err(format!("no `{key}`")),
        Some(x) => money::from_json(x).ok_or_else(|| format!("`{key}` = {x} is not a decimal amount")),
    }
}

pub struct CregoClient {
    http: ApiClient,
    page_size: u32,
    line_details_path: String,
    lead_path: String,
    programs_path: String,
    records_path: String,
    line_loans_path: String,
    line_topups_path: String,
    filters: CregoFilters,
    absent: Absent,
}

impl CregoClient {
    pub fn new(cfg: &CregoConfig) -> Result<Self, reqwest::Error> {
        Self::with_cancel(cfg, CancellationToken::new())
    }

    /// A client whose waits (rate limit, retry pauses, token renewal) end when `cancel` fires.
    pub fn with_cancel(cfg: &CregoConfig, cancel: CancellationToken) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: ApiClient::with_credential(Api::Crego, &cfg.base_url, &cfg.limits, &cfg.credential, None, cancel)?,
            page_size: cfg.page_size,
            line_details_path: cfg.line_details_path.clone(),
            lead_path: cfg.lead_path.clone(),
            programs_path: cfg.programs_path.clone(),
            records_path: cfg.records_path.clone(),
            line_loans_path: cfg.line_loans_path.clone(),
            line_topups_path: cfg.line_topups_path.clone(),
            filters: cfg.filters.clone(),
            absent: cfg.absent.clone(),
        })
    }

    pub fn http(&self) -> &ApiClient {
        &self.http
    }

    /// Page `page` (1-based) of line details updated at or after `since`, oldest first.
    pub async fn line_details_page(&self, since: f64, page: u32) -> Result<Page, ApiError> {
        self.stream_page(&self.line_details_path, None, None, since, page).await
    }

    /// One page of a change stream: items of `path` updated at or after `since`, oldest first.
    async fn stream_page(
        &self,
        path: &str,
        kind: Option<&str>,
        account: Option<&str>,
        since: f64,
        page: u32,
    ) -> Result<Page, ApiError> {
        let f = &self.filters;
        let mut query: Vec<(&str, String)> = kind
            .map(|k| (f.record_type.as_str(), k.to_string()))
            .into_iter()
            .collect();
        query.extend(account.map(|a| (f.account.as_str(), a.to_string())));
        query.extend([
            (f.updated_since.as_str(), format_epoch(since)),
            (f.ordering.as_str(), "updated_at".to_string()),
            ("page", page.to_string()),
            ("page_size", self.page_size.to_string()),
        ]);
        let resp = self
            .http
            .send(Method::GET, path, &query, None, Safety::Idempotent)
            .await?;
        parse_page(&resp.json(Api::Crego)?)
    }

    /// The lead (applicant details).
    pub async fn lead(&self, lead_id: &str) -> Result<Value, ApiError> {
        let path = self.lead_path.replace("{lead_id}", &segment(lead_id));
        self.read(&path).await?.json(Api::Crego)
    }

    /// A `GET` whose "absent" answer (`crego.absent_statuses`, `absent_message`) is
    /// [`ApiError::NotFound`], and whose 404 is not when the tenant's absence is something else.
    async fn read(&self, path: &str) -> Result<crate::partners::http::Response, ApiError> {
        let read = self.http.send(Method::GET, path, &[], None, Safety::Idempotent).await;
        match self.absent.read(read) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(ApiError::NotFound { api: Api::Crego }),
            Err(ApiError::NotFound { api }) => Err(ApiError::Rejected {
                api,
                status: 404,
                body: "404 is not among crego.absent_statuses".into(),
            }),
            Err(e) => Err(e),
        }
    }

    /// The lead's borrower-programs (`line_detail`, `loan_data`, `program`), as documented.
    pub async fn programs(&self, lead_id: &str) -> Result<Vec<Value>, ApiError> {
        let path = self.programs_path.replace("{lead_id}", &segment(lead_id));
        let v = self.read(&path).await?.json(Api::Crego)?;
        match v {
            Value::Array(items) => Ok(items),
            // Tolerate the list envelope some tenants return.
            Value::Object(ref m) if m.get("results").is_some_and(Value::is_array) => {
                Ok(m["results"].as_array().cloned().unwrap_or_default())
            }
            other => Err(ApiError::BadBody {
                api: Api::Crego,
                status: 200,
                message: format!("programs is not an array: {}", truncate(&other.to_string())),
            }),
        }
    }
}

impl CregoClient {
    /// Page `page` of repayment records updated at or after `since`, oldest first.
    pub async fn records_page(&self, since: f64, page: u32) -> Result<Page, ApiError> {
        self.records_page_of(None, since, page).await
    }

    /// [`Self::records_page`] of one account's records only (`[crego.filters] account`).
    pub async fn records_page_of(&self, account: Option<&str>, since: f64, page: u32) -> Result<Page, ApiError> {
        self.stream_page(&self.records_path, Some("repayment"), account, since, page)
            .await
    }

    /// One record (`GET /v1/lms/records/{id}/`, "Get Single Record").
    pub async fn record(&self, id: &str) -> Result<Value, ApiError> {
        let path = format!("{}{}/", self.records_path, segment(id));
        self.http
            .send(Method::GET, &path, &[], None, Safety::Idempotent)
            .await?
            .json(Api::Crego)
    }

    /// The record carrying `utr` that `on_loan` accepts (booked on the loan's account), if Crego has one: the look-up before an in-doubt
    /// record is sent again. It reads page after page until it finds the record or the list ends
    /// — a tenant that ignores the `utr` filter answers with every record of the book, and "not
    /// on the first page" must not read as "absent", or the record is written twice. A list
    /// longer than [`LOOKUP_MAX_PAGES`] is inconclusive: an error, so the row stays in doubt.
    pub async fn find_record_by_utr(
        &self,
        utr: &str,
        on_loan: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, ApiError> {
        for page in 1..=LOOKUP_MAX_PAGES {
            let query = [
                (self.filters.utr.as_str(), utr.to_string()),
                ("page", page.to_string()),
                ("page_size", LOOKUP_PAGE_SIZE.to_string()),
            ];
            let resp = self
                .http
                .send(Method::GET, &self.records_path, &query, None, Safety::Idempotent)
                .await?;
            let found = parse_page(&resp.json(Api::Crego)?)?;
            let more = found.has_next || found.total_pages.is_some_and(|n| u64::from(page) < n);
            if let Some(r) = found
                .results
                .into_iter()
                .find(|r| r["utr"].as_str() == Some(utr) && on_loan(r))
            {
                return Ok(Some(r));
            }
            if !more {
                return Ok(None);
            }
        }
        Err(ApiError::BadBody {
            api: Api::Crego,
            status: 200,
            message: format!(
                "look-up of utr {utr}: not found in the first {} records and the list goes on; the row stays in doubt",
                LOOKUP_MAX_PAGES * LOOKUP_PAGE_SIZE
            ),
        })
    }

    /// Credit-line mode: every loan and topup of a line (`crego.line_loans_path` and
    /// `crego.line_topups_path` with `?account=`), each with its kind. The documents name these
    /// lists ("List Loans", "List Topups") but give no shape: the items are read through
    /// `[mapping.transaction]`. A list longer than [`LOOKUP_MAX_PAGES`] pages is an error (a line
    /// does not have thousands of drawdowns; reading on would hide a filter Crego ignored).
    pub async fn drawdowns(&self, account: &str) -> Result<Vec<(&'static str, Value)>, ApiError> {
        let mut all = Vec::new();
        for (kind, path) in [("loan", &self.line_loans_path), ("topup", &self.line_topups_path)] {
            if path.is_empty() {
                continue;
            }
            let mut page = 1;
            loop {
                let query = [
                    (self.filters.account.as_str(), account.to_string()),
                    ("page", page.to_string()),
                    ("page_size", LOOKUP_PAGE_SIZE.to_string()),
                ];
                let resp = self
                    .http
                    .send(Method::GET, path, &query, None, Safety::Idempotent)
                    .await?;
                let found = parse_page(&resp.json(Api::Crego)?)?;
                let more = found.has_next || found.total_pages.is_some_and(|n| u64::from(page) < n);
                all.extend(found.results.into_iter().map(|d| (kind, d)));
                if !more {
                    break;
                }
                page += 1;
                if page > LOOKUP_MAX_PAGES {
                    return Err(ApiError::BadBody {
                        api: Api::Crego,
                        status: 200,
                        message: format!("the {kind}s of line {account} go on past {LOOKUP_MAX_PAGES} pages"),
                    });
                }
            }
        }
        Ok(all)
    }

    /// `POST /v1/lms/records/`: creates one record. Not idempotent.
    pub async fn create_record(&self, payload: &Value) -> Result<Value, ApiError> {
        let resp = self
            .http
            .send(Method::POST, &self.records_path, &[], Some(payload), Safety::Unsafe)
            .await?;
        resp.json(Api::Crego)
    }
}

/// Records a page of the `utr` look-up asks for.
const LOOKUP_PAGE_SIZE: u32 = 50;
/// Pages the `utr` look-up reads at most (10 000 records) before it calls the look-up inconclusive.
pub const LOOKUP_MAX_PAGES: u32 = 200;

fn parse_page(v: &Value) -> Result<Page, ApiError> {
    let bad = |m: &str| ApiError::BadBody {
        api: Api::Crego,
        status: 200,
        message: m.to_string(),
    };
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("list answer has no `results` array"))?
        .clone();
    let has_next = v.get("has_next").and_then(Value::as_bool).unwrap_or(false);
    Ok(Page {
        results,
        has_next,
        total_pages: v.get("total_pages").and_then(Value::as_u64),
    })
}

/// Epoch seconds as Crego writes them (shortest exact form).
pub fn format_epoch(secs: f64) -> String {
    format!("{secs}")
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}
