//! The sandbox's Credit Line APIs (issue 16, design §8), strict as `docs/credit-line-api.md` §10
//! reads the document: the ground credit-line mode will be built and tested on. Each rule is
//! checked through HTTP, as the daemon will meet it.

mod common;

use common::Harness;
use crego_credgenics_sync::sandbox::SandboxConfig;
use crego_credgenics_sync::sandbox::spec::Tenant;
use serde_json::{Value, json};

async fn credit_line_tenant() -> Harness {
    Harness::with(SandboxConfig {
        tenant: Tenant {
            credit_line: true,
            ..Tenant::default()
        },
        ..SandboxConfig::default()
    })
    .await
}

/// The documented upload example as a transaction of `customer`.
fn transaction(customer: &str, id: &str, month: &str) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/credgenics_upload_loan.json"
    ))
    .unwrap();
    let mut body: Value = serde_json::from_str(&text).unwrap();
    let o = body.as_object_mut().unwrap();
    o.remove("loan_id");
    o.insert("client_customer_id".into(), json!(customer));
    o.insert("transaction_id".into(), json!(id));
    body["defaults"][0]["allocation_month"] = json!(month);
    body
}

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authenticationtoken", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credit_line_apis_answer_as_documented_and_refuse_what_the_document_refuses() {
    use reqwest::Method;
    let h = credit_line_tenant().await;
    let c = Client {
        base: h.sb.credgenics_url(),
        token: h.sb.config().credgenics_token.clone(),
        http: reqwest::Client::new(),
    };

    // Upload Transaction: 201 with the documented body (not lending's).
    let (status, body) = c
        .call(Method::POST, "/loan/T-1", Some(transaction("C-1", "T-1", "2026-11-01")))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"output": "Transaction added successfully", "message": "success", "headers": {"Content-Type": "application/json"}})
    );
    let (status, _) = c
        .call(Method::POST, "/loan/T-2", Some(transaction("C-1", "T-2", "2026-11-01")))
        .await;
    assert_eq!(status, 201);

    // Refused: no client_customer_id; a body transaction_id other than the path's; a
    // transaction under another customer; a zero-padded month (the lending rules apply).
    let mut no_customer = transaction("C-1", "T-3", "2026-11-01");
    no_customer.as_object_mut().unwrap().remove("client_customer_id");
    let (status, body) = c.call(Method::POST, "/loan/T-3", Some(no_customer)).await;
    assert_eq!(status, 400);
    assert!(body["output"]["errors"]["client_customer_id"].is_string(), "{body}");
    let (status, body) = c
        .call(Method::POST, "/loan/T-3", Some(transaction("C-1", "T-9", "2026-11-01")))
        .await;
    assert_eq!(status, 400);
    assert!(body["output"]["errors"]["transaction_id"].is_string(), "{body}");
    let (status, body) = c
        .call(Method::POST, "/loan/T-1", Some(transaction("C-2", "T-1", "2026-12-01")))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["output"]["errors"]["client_customer_id"]
            .as_str()
            .unwrap()
            .contains("another customer")
    );
    let (status, body) = c
        .call(Method::POST, "/loan/T-4", Some(transaction("C-1", "T-4", "2026-09-01")))
        .await;
    assert_eq!(status, 400, "a zero-padded month is refused: {body}");

    // Update Transaction: only under its own customer, only a month already uploaded.
    let patch = json!({"defaults": [{"allocation_month": "2026-11-01", "late_fee": 100}]});
    let (status, body) = c.call(Method::PATCH, "/transaction/C-1/T-1", Some(patch.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "Transaction updated successfully");
    let (status, _) = c.call(Method::PATCH, "/transaction/C-2/T-1", Some(patch)).await;
    assert_eq!(status, 404, "not that customer's transaction");
    let (status, _) = c
        .call(
            Method::PATCH,
            "/transaction/C-1/T-1",
            Some(json!({"defaults": [{"allocation_month": "2026-12-01", "late_fee": 1}]})),
        )
        .await;
    assert_eq!(status, 400, "a month not uploaded");

    // Update Payment: client_customer_id required and the transaction's; one entry in the
    // customer's history, with no transaction id; the transaction's month updated.
    let payment = |customer: Option<&str>, amount: u64| {
        let mut p = json!({"final_status": "Partially Recovered", "amount_recovered": amount,
            "payment_method": "Online", "payment_mode": "UPI", "payment_reference_number": format!("UTR-{amount}"),
            "recovery_date": "2026-11-20"});
        if let Some(c) = customer {
            p["client_customer_id"] = json!(c);
        }
        p
    };
    let (status, body) = c
        .call(
            Method::PATCH,
            "/payments/T-1?allocation_month=2026-11-01",
            Some(payment(None, 500)),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["output"]["errors"]["client_customer_id"].is_string(), "{body}");
    let (status, _) = c
        .call(
            Method::PATCH,
            "/payments/T-1?allocation_month=2026-11-01",
            Some(payment(Some("C-2"), 500)),
        )
        .await;
    assert_eq!(status, 400, "another customer's id");
    let (status, _) = c
        .call(
            Method::PATCH,
            "/payments/T-7?allocation_month=2026-11-01",
            Some(payment(Some("C-1"), 500)),
        )
        .await;
    assert_eq!(status, 404, "an unknown transaction");
    let (status, _) = c
        .call(Method::PATCH, "/payments/T-1", Some(payment(Some("C-1"), 500)))
        .await;
    assert_eq!(status, 400, "allocation_month is required");
    let (status, body) = c
        .call(
            Method::PATCH,
            "/payments/T-1?allocation_month=2026-11-01",
            Some(payment(Some("C-1"), 500)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"], "Data updated successfully");
    let (status, _) = c
        .call(
            Method::PATCH,
            "/payments/T-2?allocation_month=2026-11-01",
            Some(payment(Some("C-1"), 700)),
        )
        .await;
    assert_eq!(status, 200);

    // Get Customer: the documented wrapper; payments at customer level, without transaction ids.
    let (status, body) = c.call(Method::GET, "/loan/C-1", None).await;
    assert_eq!(status, 200, "{body}");
    let out = &body["output"];
    assert_eq!(out["applicant_details"]["client_customer_id"], "C-1");
    let ids: Vec<&str> = out["transactions_details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transaction_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["T-1", "T-2"]);
    let t1 = &out["transactions_details"][0]["data"];
    assert_eq!(t1["transaction_id"], "T-1");
    assert_eq!(t1["defaults"][0]["late_fee"], 100);
    assert_eq!(t1["defaults"][0]["amount_recovered"].to_string(), "500");
    let history = out["payment_history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    for p in history {
        assert_eq!(p["client_customer_id"], "C-1");
        assert!(p.get("transaction_id").is_none(), "not a documented key: {p}");
        assert!(p["payment_id"].is_number() && p["allocation_month"] == "2026-11-01");
    }
    for key in ["communication_details", "notice_tracking_details", "remarks"] {
        assert!(out[key].is_array(), "{key}");
    }

    // No transaction reads, no lending updates; a token is required.
    assert_eq!(c.call(Method::GET, "/loan/T-1", None).await.0, 404);
    assert_eq!(
        c.call(Method::PATCH, "/loan/C-1", Some(json!({"applicant_name": "X"})))
            .await
            .0,
        404
    );
    let anonymous = reqwest::get(format!("{}/loan/C-1", c.base)).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let s = h.sb.state();
    let t1 = &s.credit_line.customers["C-1"].transactions["T-1"];
    assert_eq!(t1.uploads_per_month.get("2026-11-01"), Some(&1));
}

/// The client's Credit Line calls against the strict sandbox: what credit-line mode will send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credgenics_client_speaks_the_credit_line_apis() {
    use crego_credgenics_sync::partners::credgenics::CredgenicsClient;
    let h = credit_line_tenant().await;
    let config = h.config();
    let client = CredgenicsClient::new(&config.credgenics).unwrap();
    assert_eq!(client.get_customer("C-9").await.unwrap(), None, "absent, not an error");
    client
        .upload_transaction("T-9", &transaction("C-9", "T-9", "2026-11-01"))
        .await
        .unwrap();
    client
        .update_transaction(
            "C-9",
            "T-9",
            &json!({"defaults": [{"allocation_month": "2026-11-01", "late_fee": 7}]}),
        )
        .await
        .unwrap();
    client
        .add_transaction_payment(
            "T-9",
            "2026-11-01",
            &json!({"client_customer_id": "C-9", "final_status": "Closed", "amount_recovered": 1000,
                    "payment_method": "Online", "payment_reference_number": "UTR-9", "closure_with": "NOC"}),
        )
        .await
        .unwrap();
    let customer = client.get_customer("C-9").await.unwrap().expect("the customer");
    assert_eq!(customer["transactions_details"][0]["transaction_id"], "T-9");
    assert_eq!(
        customer["transactions_details"][0]["data"]["defaults"][0]["final_status"],
        "Closed"
    );
    assert_eq!(customer["payment_history"][0]["payment_reference_number"], "UTR-9");
    // A refusal is the documented 400, named by field.
    let err = client
        .add_transaction_payment(
            "T-9",
            "2026-11-01",
            &json!({"final_status": "Closed", "amount_recovered": 1, "payment_method": "Online"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("client_customer_id"), "{err}");
}
