//! Client-credentials tokens through the `oauth2` crate, with Entra's error shape.

use crate::error::{entra_advice, GraphError};
use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenResponse,
};
use oauth2::{EndpointNotSet, EndpointSet, StandardRevocableToken};
use std::fmt;

/// Entra's token error body: the OAuth fields plus `error_codes`, `trace_id`, `correlation_id`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct EntraErrorResponse {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<u32>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl fmt::Display for EntraErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.error, self.error_codes)
    }
}

impl oauth2::ErrorResponse for EntraErrorResponse {}

pub(crate) type EntraClient = oauth2::Client<
    EntraErrorResponse,
    BasicTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

impl EntraErrorResponse {
    pub(crate) fn into_error(self) -> GraphError {
        // Branch on `error_codes`/`error`, never on the description (FACTS §6); fall back to
        // the AADSTS number in the description only when `error_codes` is absent.
        let mut codes = self.error_codes;
        if codes.is_empty() {
            if let Some(n) = self
                .error_description
                .as_deref()
                .and_then(|d| d.strip_prefix("AADSTS"))
                .and_then(|d| d.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse().ok())
            {
                codes.push(n);
            }
        }
        GraphError::Token {
            advice: entra_advice(&self.error, &codes),
            error: self.error,
            codes,
            trace_id: self.trace_id,
            correlation_id: self.correlation_id,
        }
    }
}
