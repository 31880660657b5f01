//! "Not found" as a tenant says it (issue 13): the documents never say how either API answers a
//! read of something it does not have. 404 is assumed; a tenant may answer 400 with a message
//! instead, and until that reads as "absent" an in-doubt upload never resolves and a lead that is
//! gone is retried for ever. Only reads are classified here: a refused write is never "absent".

use super::error::ApiError;

/// Which answers to a read mean "the partner does not have it".
#[derive(Debug, Clone)]
pub struct Absent {
    /// Statuses meaning absent (4xx, not 429).
    pub statuses: Vec<u16>,
    /// When set, a listed status other than 404 means absent only when the answer's body holds
    /// this text (case-insensitive): a 400 also answers a malformed request, which is not absence.
    pub message: Option<String>,
}

impl Default for Absent {
    fn default() -> Self {
        Self {
            statuses: vec![404],
            message: None,
        }
    }
}

impl Absent {
    /// Whether the failure of a read says the thing is not there.
    pub fn says_absent(&self, e: &ApiError) -> bool {
        match e {
            ApiError::NotFound { .. } => self.statuses.contains(&404),
            ApiError::Rejected { status, body, .. } => {
                self.statuses.contains(status)
                    && self
                        .message
                        .as_deref()
                        .is_none_or(|m| body.to_lowercase().contains(&m.to_lowercase()))
            }
            _ => false,
        }
    }

    /// A read's result with "absent" as `None`.
    pub fn read<T>(&self, r: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if self.says_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partners::http::Api;

    fn rejected(status: u16, body: &str) -> ApiError {
        ApiError::Rejected {
            api: Api::Credgenics,
            status,
            body: body.into(),
        }
    }

    #[test]
    fn a_400_is_absent_only_when_listed_and_its_message_matches() {
        let nf = ApiError::NotFound { api: Api::Credgenics };
        assert!(Absent::default().says_absent(&nf));
        assert!(!Absent::default().says_absent(&rejected(400, "Loan not found")));
        let a = Absent {
            statuses: vec![400, 404],
            message: Some("loan not found".into()),
        };
        assert!(a.says_absent(&nf));
        assert!(a.says_absent(&rejected(400, r#"{"message": "Loan Not Found"}"#)));
        assert!(!a.says_absent(&rejected(400, r#"{"message": "Data Validation Failed"}"#)));
        let only_400 = Absent {
            statuses: vec![400],
            message: None,
        };
        assert!(!only_400.says_absent(&nf), "a 404 not listed is not absent");
    }
}
