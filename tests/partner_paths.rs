//! Credgenics endpoint paths are config (issue 13): the seed document's `/loan/{loan_id}` by
//! default, and a tenant on the newer public profile sets `/v1/loan/{loan_id}`. The id is one
//! path segment, its unreserved characters left as they are.

use crego_credgenics_sync::config::RawConfig;
use crego_credgenics_sync::partners::credgenics::CredgenicsClient;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer, extra: &str) -> CredgenicsClient {
    let raw = RawConfig::from_toml_str(&format!(
        "[crego]\nbase_url = \"https://crego.example\"\nbearer_token = \"t\"\n\
         [credgenics]\nbase_url = \"{}/recovery\"\nauth_token = \"c\"\nmax_retries = 0\n{extra}",
        server.uri()
    ))
    .unwrap();
    CredgenicsClient::new(&raw.validate().unwrap().credgenics).unwrap()
}

#[tokio::test]
async fn the_configured_paths_are_the_ones_called_with_the_id_as_one_segment() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/recovery/v1/loan/CL-7_a.b"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message": "ok"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/recovery/v1/payments/CL-7_a.b"))
        .and(query_param("allocation_month", "2026-11-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message": "ok"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/recovery/v1/loan/CL%2F8"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(
        &server,
        "loan_path = \"/v1/loan/{loan_id}\"\npayments_path = \"/v1/payments/{loan_id}\"\n",
    );
    c.upload_loan("CL-7_a.b", &json!({"loan_id": "CL-7_a.b"}))
        .await
        .unwrap();
    c.add_payment("CL-7_a.b", "2026-11-01", &json!({"amount_recovered": 1}))
        .await
        .unwrap();
    assert_eq!(c.get_loan("CL/8", None).await.unwrap(), None, "a 404 is an absent loan");
}

#[test]
fn a_path_without_its_placeholder_is_refused_by_name() {
    let raw = RawConfig::from_toml_str(
        "[crego]\nbase_url = \"https://crego.example\"\nbearer_token = \"t\"\n\
         [credgenics]\nbase_url = \"https://cg.example/recovery\"\nauth_token = \"c\"\n\
         loan_path = \"/v1/loan/\"\npayments_path = \"payments/{loan_id}\"\n",
    )
    .unwrap();
    let err = raw.validate().unwrap_err().to_string();
    assert!(
        err.contains("credgenics.loan_path: `/v1/loan/` must contain {loan_id}"),
        "{err}"
    );
    assert!(
        err.contains("credgenics.payments_path: `payments/{loan_id}` must start with /"),
        "{err}"
    );
}

/// The Crego list filters' names are config too (design §5): a tenant that calls them otherwise
/// gets its own names on the change stream and the `utr` look-up.
#[tokio::test]
async fn crego_list_filters_go_by_their_configured_names() {
    use crego_credgenics_sync::partners::crego::CregoClient;
    let server = MockServer::start().await;
    let empty = json!({"results": [], "has_next": false});
    Mock::given(method("GET"))
        .and(path("/v1/lms/records/"))
        .and(query_param("kind", "repayment"))
        .and(query_param("modified_after", "1700000000.5"))
        .and(query_param("sort", "updated_at"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty.clone()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/lms/records/"))
        .and(query_param("reference", "UTR-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty))
        .expect(1)
        .mount(&server)
        .await;
    let raw = RawConfig::from_toml_str(&format!(
        "[crego]\nbase_url = \"{}\"\nbearer_token = \"t\"\nmax_retries = 0\n\
         [crego.filters]\nupdated_since = \"modified_after\"\nordering = \"sort\"\nrecord_type = \"kind\"\nutr = \"reference\"\n\
         [credgenics]\nbase_url = \"https://cg.example/recovery\"\nauth_token = \"c\"\n",
        server.uri()
    ))
    .unwrap();
    let c = CregoClient::new(&raw.validate().unwrap().crego).unwrap();
    assert!(c.records_page(1_700_000_000.5, 1).await.unwrap().results.is_empty());
    assert_eq!(
        c.find_record_by_utr("UTR-1", |r| r["account"] == "acct").await.unwrap(),
        None
    );
}

/// "Absent" is a 404 only by assumption (design §5): a tenant that answers 400 for a loan it
/// does not have would leave every in-doubt upload in doubt for ever. `absent_statuses` says
/// which statuses mean "not there"; any other refusal is still an error, never "absent".
#[tokio::test]
async fn absent_is_the_configured_statuses_and_nothing_else() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/recovery/loan/CL1"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "Loan not found"})))
        .mount(&server)
        .await;
    let default = client(&server, "");
    assert!(
        default.get_loan("CL1", None).await.is_err(),
        "a 400 is not absent by default"
    );
    let tenant = client(&server, "absent_statuses = [400, 404]\n");
    assert_eq!(tenant.get_loan("CL1", None).await.unwrap(), None);
    let server404 = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server404)
        .await;
    let c404 = client(&server404, "absent_statuses = [400]\n");
    assert!(c404.get_loan("CL1", None).await.is_err(), "404 not listed: not absent");
}

/// The documented token exchange is at the root of the Credgenics host, not under `/recovery`
/// (issue 13): that is the default; `token_url` names another, `token_path` keeps the old
/// under-`base_url` form, and both at once is refused by name.
#[test]
fn the_credgenics_token_exchange_defaults_to_the_host_root() {
    use crego_credgenics_sync::config::Credential;
    let cfg = |extra: &str| {
        RawConfig::from_toml_str(&format!(
            "[crego]\nbase_url = \"https://crego.example\"\nbearer_token = \"t\"\n\
             [credgenics]\nbase_url = \"https://cg.example/recovery\"\nclient_id = \"id\"\nclient_secret = \"s\"\n{extra}"
        ))
        .unwrap()
        .validate()
    };
    let url_of = |c: &crego_credgenics_sync::config::Config| match &c.credgenics.credential {
        Credential::Exchange {
            token_url, token_path, ..
        } => (token_url.as_ref().map(|u| u.to_string()), token_path.clone()),
        other => panic!("{other:?}"),
    };
    let c = cfg("").unwrap();
    assert_eq!(
        url_of(&c).0.as_deref(),
        Some("https://cg.example/user/public/access-token")
    );
    let c = cfg("token_url = \"https://auth.cg.example/token\"\n").unwrap();
    assert_eq!(url_of(&c).0.as_deref(), Some("https://auth.cg.example/token"));
    let c = cfg("token_path = \"/user/public/access-token\"\n").unwrap();
    assert_eq!(url_of(&c), (None, "/user/public/access-token".to_string()));
    let err = cfg("token_url = \"https://a.example/t\"\ntoken_path = \"/t\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("credgenics.token_url: set token_url or token_path, not both"),
        "{err}"
    );
}
