//! Regression: the look-up before an in-doubt Crego record is sent again read one page of 50.
//! A tenant that ignores the `utr` filter answers with every record of the book, so a record on
//! page 2 read as "absent" and would have been written twice. The look-up now pages until it
//! finds the record or the list ends, and a list too long to read is inconclusive (the row stays
//! in doubt), never "absent".

use crego_credgenics_sync::config::RawConfig;
use crego_credgenics_sync::partners::crego::{CregoClient, LOOKUP_MAX_PAGES};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn record(i: usize, utr: &str, account: &str) -> Value {
    json!({"id": format!("rec-{i}"), "type": "repayment", "utr": utr, "account": account, "amount": 100})
}

/// A page of the unfiltered book: 50 records of other payments, and `extra` at its end.
fn page(n: u32, has_next: bool, extra: Option<Value>) -> Value {
    let mut results: Vec<Value> = (0..50)
        .map(|i| record(n as usize * 100 + i, &format!("OTHER-{n}-{i}"), "acct-x"))
        .collect();
    results.extend(extra);
    json!({"results": results, "has_next": has_next})
}

async fn client(server: &MockServer) -> CregoClient {
    let raw = RawConfig::from_toml_str(&format!(
        "[crego]\nbase_url = \"{}\"\nbearer_token = \"t\"\nmax_retries = 0\nrequests_per_second = 1000\n\
         [credgenics]\nbase_url = \"https://cg.example/recovery\"\nauth_token = \"c\"\n",
        server.uri()
    ))
    .unwrap();
    let config = raw.validate().unwrap();
    CregoClient::new(&config.crego).unwrap()
}

async fn serve(server: &MockServer, n: u32, body: Value) {
    Mock::given(method("GET"))
        .and(path("/v1/lms/records/"))
        .and(query_param("page", n.to_string()))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_record_past_the_first_page_of_an_unfiltered_list_is_found() {
    let server = MockServer::start().await;
    serve(&server, 1, page(1, true, None)).await;
    serve(&server, 2, page(2, true, None)).await;
    // The same utr on another account is not ours; ours is on page 3.
    serve(&server, 3, page(3, false, Some(record(7, "UTR-7", "acct-other")))).await;
    let c = client(&server).await;
    assert_eq!(
        c.find_record_by_utr("UTR-7", |r| r["account"] == "acct-1")
            .await
            .unwrap(),
        None
    );

    let server = MockServer::start().await;
    serve(&server, 1, page(1, true, None)).await;
    serve(&server, 2, page(2, true, None)).await;
    serve(&server, 3, page(3, false, Some(record(7, "UTR-7", "acct-1")))).await;
    let c = client(&server).await;
    let found = c
        .find_record_by_utr("UTR-7", |r| r["account"] == "acct-1")
        .await
        .unwrap();
    assert_eq!(
        found.and_then(|r| r["id"].as_str().map(str::to_string)),
        Some("rec-7".into())
    );
}

#[tokio::test]
async fn a_list_too_long_to_read_is_inconclusive_not_absent() {
    let server = MockServer::start().await;
    // Every page says there is another.
    Mock::given(method("GET"))
        .and(path("/v1/lms/records/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(1, true, None)))
        .expect(u64::from(LOOKUP_MAX_PAGES))
        .mount(&server)
        .await;
    let c = client(&server).await;
    let err = c
        .find_record_by_utr("UTR-7", |r| r["account"] == "acct-1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stays in doubt"), "{err}");
}
