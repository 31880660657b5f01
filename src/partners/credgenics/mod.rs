//! Credgenics client: get, upload and update a loan, with the documented validation-error body
//! (`{"message": "Data Validation Failed", "output": {"errors": {...}}}`) parsed into
//! `field path → message`.

pub mod rules;

use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;

use reqwest::Method;
use serde_json::Value;

use crate::config::CredgenicsConfig;
use crate::money;
use crate::partners::http::absent::Absent;
use crate::partners::http::path::segment;
use crate::partners::http::{Api, ApiClient, ApiError, Safety};

pub struct CredgenicsClient {
    http: ApiClient,
    loan_path: String,
    payments_path: String,
    transaction_path: String,
    absent: Absent,
}

impl CredgenicsClient {
    pub fn new(cfg: &CredgenicsConfig) -> Result<Self, reqwest::Error> {
        Self::with_cancel(cfg, CancellationToken::new())
    }

    /// A client whose waits (rate limit, retry pauses, token renewal) end when `cancel` fires.
    pub fn with_cancel(cfg: &CredgenicsConfig, cancel: CancellationToken) -> Result<Self, reqwest::Error> {
        let mut http = ApiClient::with_credential(
            Api::Credgenics,
            &cfg.base_url,
            &cfg.limits,
            &cfg.credential,
            Some("authenticationtoken"),
            cancel,
        )?;
        http = match &cfg.company_id {
            Some(company) => http.with_query("company_id", company),
            None => http.learn_company(),
        };
        Ok(Self {
            http,
            loan_path: cfg.loan_path.clone(),
            payments_path: cfg.payments_path.clone(),
            transaction_path: cfg.transaction_path.clone(),
            absent: cfg.absent.clone(),
        })
    }

    pub fn http(&self) -> &ApiClient {
        &self.http
    }

    /// `credgenics.loan_path` for `loan_id`.
    fn loan_path(&self, loan_id: &str) -> String {
        self.loan_path.replace("{loan_id}", &segment(loan_id))
    }

    /// `GET /loan/{loan_id}`; `None` when Credgenics does not have the loan (a status of
    /// `credgenics.absent_statuses` and `absent_message`, 404 by default).
    pub async fn get_loan(&self, loan_id: &str, fields: Option<&str>) -> Result<Option<Value>, ApiError> {
        let query: Vec<(&str, String)> = fields.map(|f| ("fields", f.to_string())).into_iter().collect();
        let read = self
            .http
            .send(Method::GET, &self.loan_path(loan_id), &query, None, Safety::Idempotent)
            .await;
        match self.absent.read(read)? {
            Some(r) => Ok(Some(r.json(Api::Credgenics)?)),
            None => Ok(None),
        }
    }

    /// `POST /loan/{loan_id}`: a new loan or a new allocation month. Not idempotent.
    pub async fn upload_loan(&self, loan_id: &str, payload: &Value) -> Result<(), ApiError> {
        self.http
            .send(
                Method::POST,
                &self.loan_path(loan_id),
                &[],
                Some(payload),
                Safety::Unsafe,
            )
            .await?;
        Ok(())
    }

    /// `PATCH /loan/{loan_id}` with the changed keys: setting values again is harmless.
    pub async fn update_loan(&self, loan_id: &str, patch: &Value) -> Result<(), ApiError> {
        self.http
            .send(
                Method::PATCH,
                &self.loan_path(loan_id),
                &[],
                Some(patch),
                Safety::Idempotent,
            )
            .await?;
        Ok(())
    }
}

impl CredgenicsClient {
    /// `PATCH /payments/{loan_id}?allocation_month=`: creates one payment entry. Not idempotent.
    pub async fn add_payment(&self, loan_id: &str, allocation_month: &str, payload: &Value) -> Result<(), ApiError> {
        let query = [("allocation_month", allocation_month.to_string())];
        let path = self.payments_path.replace("{loan_id}", &segment(loan_id));
        self.http
            .send(Method::PATCH, &path, &query, Some(payload), Safety::Unsafe)
            .await?;
        Ok(())
    }

    /// The loan's allocations and payments (`GET /loan/{id}?fields=loan,payment`): what the
    /// poll and reconcile read; `None` when the loan is absent.
    pub async fn full_loan(&self, loan_id: &str) -> Result<Option<Value>, ApiError> {
        self.get_loan(loan_id, Some("loan,payment")).await
    }

    // ----- the Credit Line APIs (design §8; docs/credit-line-api.md) -----------------------

    /// Get Customer (`GET /loan/{client_customer_id}`): the documented answer's `output` —
    /// `applicant_details`, `transactions_details[]`, `payment_history[]`; `None` when absent.
    pub async fn get_customer(&self, customer_id: &str) -> Result<Option<Value>, ApiError> {
        match self.get_loan(customer_id, None).await? {
            Some(mut v) => match v.get_mut("output").map(Value::take) {
                Some(output @ Value::Object(_)) => Ok(Some(output)),
                _ => Err(ApiError::BadBody {
                    api: Api::Credgenics,
                    status: 200,
                    message: "a customer read without the documented `output` object".into(),
                }),
            },
            None => Ok(None),
        }
    }

    /// Upload Transaction (`POST /loan/{transaction_id}`, the body naming its
    /// `client_customer_id`): a new transaction or a new allocation month. Not idempotent.
    pub async fn upload_transaction(&self, transaction_id: &str, payload: &Value) -> Result<(), ApiError> {
        self.upload_loan(transaction_id, payload).await
    }

    /// Update Transaction (`PATCH /transaction/{client_customer_id}/{transaction_id}`) with the
    /// changed keys: setting values again is harmless.
    pub async fn update_transaction(
        &self,
        customer_id: &str,
        transaction_id: &str,
        patch: &Value,
    ) -> Result<(), ApiError> {
        let path = self
            .transaction_path
            .replace("{client_customer_id}", &segment(customer_id))
            .replace("{transaction_id}", &segment(transaction_id));
        self.http
            .send(Method::PATCH, &path, &[], Some(patch), Safety::Idempotent)
            .await?;
        Ok(())
    }

    /// Update Payment of a transaction (`PATCH /payments/{transaction_id}?allocation_month=`,
    /// the body naming its `client_customer_id`): one payment entry. Not idempotent.
    pub async fn add_transaction_payment(
        &self,
        transaction_id: &str,
        allocation_month: &str,
        payload: &Value,
    ) -> Result<(), ApiError> {
        self.add_payment(transaction_id, allocation_month, payload).await
    }

    /// The loan's `payment_history` (`GET /loan/{id}?fields=payment`); `None` when the loan is absent.
    pub async fn payment_history(&self, loan_id: &str) -> Result<Option<Vec<Value>>, ApiError> {
        Ok(self
            .get_loan(loan_id, Some("payment"))
            .await?
            .map(|v| match v.get("payment_history") {
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            }))
    }
}

/// Flattens the documented validation-error body into `field.path → message`
/// (`co_applicant.0.co_applicant_email`). `None` when the body is not that shape.
pub fn validation_errors(body: &str) -> Option<BTreeMap<String, String>> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(flatten_errors(v.get("output")?.get("errors")?.as_object()?))
}

/// The documented nested error shape (`{"co_applicant": {"0": {...}}}`) as `field.path → message`.
pub fn flatten_errors(errors: &serde_json::Map<String, Value>) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    walk(&format!("{prefix}.{k}"), v, out);
                }
            }
            Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    for (k, v) in errors {
        walk(k, v, &mut out);
    }
    out
}

/// Preflight (design §4): the documented rules checked before any request. `None` when the
/// payload passes; otherwise every failing field and why, as the JSON text the state keeps for
/// API rejections too.
pub fn preflight(errors: serde_json::Map<String, Value>) -> Option<String> {
    if errors.is_empty() {
        return None;
    }
    let flat = flatten_errors(&errors);
    Some(serde_json::to_string(&flat).unwrap_or_default())
}

/// Rounds every documented amount in `v` (at any depth) half-up to `decimals` places, as design
/// §2.6 demands; amounts stay exact decimals, never floats. Names the first amount that is not a
/// number.
pub fn round_amounts(v: &mut Value, decimals: u32) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match v {
                    Value::Number(n) if rules::is_amount(k) => {
                        let d = money::from_json(&Value::Number(n.clone()))
                            .ok_or_else(|| format!("`{k}` = {n} is not a decimal amount"))?;
                        *v = money::to_json(money::round(d, decimals));
                    }
                    other => round_amounts(other, decimals)?,
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| round_amounts(x, decimals)),
        _ => Ok(()),
    }
}

/// A one-line description of a rejection for the state and the logs.
pub fn describe_rejection(status: u16, body: &str) -> String {
    match validation_errors(body) {
        Some(errors) if !errors.is_empty() => serde_json::to_string(&errors).unwrap_or_else(|_| body.to_string()),
        _ => format!("HTTP {status}: {}", body.chars().take(500).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_rounded_half_up_exactly() {
        let mut v: Value = serde_json::from_str(
            r#"{"total_loan_amount": 100.005, "defaults": [{"late_fee": 0.30000000000000004, "allocation_dpd_value": 12}], "loan_id": "1.005"}"#,
        )
        .unwrap();
        round_amounts(&mut v, 2).unwrap();
        assert_eq!(v["total_loan_amount"].to_string(), "100.01");
        assert_eq!(v["defaults"][0]["late_fee"].to_string(), "0.3");
        assert_eq!(v["defaults"][0]["allocation_dpd_value"].to_string(), "12");
        assert_eq!(v["loan_id"], "1.005");
    }

    #[test]
    fn documented_failure_body_is_flattened() {
        let body = r#"{"message": "Data Validation Failed", "output": {"errors": {
            "applicant_contact_number": "Invalid Mobile numbers, [83849879]",
            "co_applicant": {"0": {"co_applicant_email": "Invalid Emails, [tempgmail.com]"}},
            "defaults": {"0": {"default_emi_number": "Value must be a number"}}}}}"#;
        let e = validation_errors(body).unwrap();
        assert_eq!(e["applicant_contact_number"], "Invalid Mobile numbers, [83849879]");
        assert_eq!(
            e["co_applicant.0.co_applicant_email"],
            "Invalid Emails, [tempgmail.com]"
        );
        assert_eq!(e["defaults.0.default_emi_number"], "Value must be a number");
        assert!(validation_errors("not json").is_none());
    }
}
