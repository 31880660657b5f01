//! The keyset reader of Crego's change streams (line details for flow A, repayment records for
//! flow C), design §2.4.
//!
//! A list ordered by `updated_at` and read by page number shifts under the reader: an item
//! updated mid-read moves to the end and every later item moves one place back, so one item per
//! change is skipped, and lost for good once the read outlasts the overlap window (a first sync
//! at partner rates runs for hours). This reader moves by key instead: each request asks for the
//! first page of items updated at or after the newest `updated_at` it has read, and drops the
//! items at exactly that instant it has already returned. An item updated during the read is met
//! again at the end, and nothing can slide past the reader. Only when a whole page shares one
//! `updated_at` (a bulk job stamping many items at once) does it step to the next page of that
//! instant, so such groups still make progress.

use std::collections::HashSet;

use serde_json::Value;

use super::{CregoClient, LOOKUP_MAX_PAGES};
use crate::partners::http::ApiError;

/// Which change stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    LineDetails,
    Repayments,
}

/// One read of a change stream from an instant, page by page.
pub struct StreamReader<'a> {
    client: &'a CregoClient,
    stream: Stream,
    /// Only the records of this account (reconcile's read of one loan).
    account: Option<String>,
    /// The newest `updated_at` read so far: the next request starts there.
    from: f64,
    /// Page of the items at exactly `from` (above 1 only while a whole page shares `from`).
    page: u32,
    /// Ids already returned whose `updated_at` is exactly `from`.
    returned_at_from: HashSet<String>,
    requests: u64,
    done: bool,
}

impl<'a> StreamReader<'a> {
    pub fn new(client: &'a CregoClient, stream: Stream, from: f64) -> Self {
        Self {
            client,
            stream,
            account: None,
            from,
            page: 1,
            returned_at_from: HashSet::new(),
            requests: 0,
            done: false,
        }
    }

    /// The repayment records of one account, from the start: read by key as the streams are,
    /// so a record changed while the list is paged is neither skipped nor lost.
    pub fn of_account(client: &'a CregoClient, account: &str) -> Self {
        Self {
            account: Some(account.to_string()),
            ..Self::new(client, Stream::Repayments, 0.0)
        }
    }

    /// The next items of the stream (possibly none while the read goes on), or `None` once the
    /// read has reached its end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let page = match self.stream {
            Stream::LineDetails => self.client.line_details_page(self.from, self.page).await?,
            Stream::Repayments => {
                self.client
                    .records_page_of(self.account.as_deref(), self.from, self.page)
                    .await?
            }
        };
        self.requests += 1;
        let newest = page
            .results
            .iter()
            .filter_map(updated_at)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let items: Vec<Value> = page
            .results
            .into_iter()
            .filter(|item| {
                !(updated_at(item) == Some(self.from) && id(item).is_some_and(|id| self.returned_at_from.contains(id)))
            })
            .collect();
        // A partner that answers a page it already gave (or items older than asked for) while
        // saying there is more would keep the read going for ever: the read ends with an error
        // naming the stream. (A first page at an instant may hold only items already returned at
        // it; the next page of that instant must hold a new one.)
        let fresh = items.iter().any(|i| updated_at(i).is_some_and(|at| at >= self.from));
        if page.has_next && !fresh && self.page > 1 {
            return Err(ApiError::BadBody {
                api: crate::partners::http::Api::Crego,
                status: 200,
                message: format!(
                    "{:?} stream: page {} of updated_at__gte={} holds no item not read already, yet has_next \
                     is true (a page seen twice); the read stops here",
                    self.stream, self.page, self.from
                ),
            });
        }
        match newest {
            Some(newest) if newest > self.from => {
                self.from = newest;
                self.page = 1;
                self.returned_at_from.clear();
            }
            // A whole page at `from`: the next page of that instant.
            Some(_) => self.page += 1,
            None => {}
        }
        for item in &items {
            if updated_at(item) == Some(self.from)
                && let Some(id) = id(item)
            {
                self.returned_at_from.insert(id.to_string());
            }
        }
        // An empty answer, or the last page: the read is at its end.
        if !page.has_next || newest.is_none() {
            self.done = true;
        }
        Ok(Some(items))
    }

    /// List requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }
}

/// The repayment records of one account (reconcile): read by key as the change streams are
/// (`[crego.filters] account`), each record once in its latest version; `on_account` keeps
/// only the records really on it, as a tenant that ignores the filter answers with the whole
/// book. A read longer than [`LOOKUP_MAX_PAGES`] requests is an error, not a partial answer.
pub async fn records_of_account(
    client: &CregoClient,
    account: &str,
    on_account: impl Fn(&Value) -> bool,
) -> Result<Vec<Value>, ApiError> {
    let mut reader = StreamReader::of_account(client, account);
    let mut out: Vec<Value> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    while let Some(items) = reader.next_page().await? {
        for r in items.into_iter().filter(|r| on_account(r)) {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            match at.get(&id) {
                Some(&i) => out[i] = r,
                None => {
                    at.insert(id, out.len());
                    out.push(r);
                }
            }
        }
        if reader.requests() >= u64::from(LOOKUP_MAX_PAGES) {
            return Err(ApiError::BadBody {
                api: crate::partners::http::Api::Crego,
                status: 200,
                message: format!(
                    "records of account {account}: not read to the end in {LOOKUP_MAX_PAGES} requests; check [crego.filters] account"
                ),
            });
        }
    }
    Ok(out)
}

fn updated_at(item: &Value) -> Option<f64> {
    item.get("updated_at").and_then(Value::as_f64)
}

fn id(item: &Value) -> Option<&str> {
    item.get("id").and_then(Value::as_str)
}
