//! `HttpScriptInvocationContext` as the host serializes it: `{"Data":{...},"Metadata":{...}}`
//! (`azure-functions-host` `Workers/Http/HttpScriptInvocationContext.cs`,
//! `Workers/MessageExtensions/HttpScriptInvocationContextExtensions.cs`).

use serde::Deserialize;
use serde_json::{Map, Value};

/// Header carrying the invocation ID (`Workers/Http/HttpWorkerConstants.cs`).
pub const INVOCATION_ID_HEADER: &str = "X-Azure-Functions-InvocationId";

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the invocation body is not JSON: {0}")]
    Json(String),
    #[error("the invocation has no Data.{0} input")]
    MissingInput(&'static str),
    #[error("Data.{name} has an unexpected shape: {reason}")]
    Shape { name: &'static str, reason: String },
}

#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "Data", alias = "data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", alias = "metadata", default)]
    pub metadata: Map<String, Value>,
}

impl Envelope {
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Json(e.to_string()))
    }

    /// A metadata value with the host's extra string encoding removed (see [`unwrap_host_string`]).
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        let value = self
            .metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)?;
        match value {
            Value::String(s) => Some(unwrap_host_string(s)),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Non-object values reach the envelope through `JsonConvert.SerializeObject(value)`
/// (`ScriptInvocationContextExtensions.GetHttpScriptInvocationContextValue`): a string `abc` arrives as the
/// JSON string `"\"abc\""`, a long `1` as `"1"`. This undoes that second encoding when it is present and
/// leaves the text alone when it is not (a value that is not itself a JSON string literal).
pub fn unwrap_host_string(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        if let Ok(inner) = serde_json::from_str::<String>(s) {
            return inner;
        }
    }
    s.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_second_encoding_only_when_present() {
        assert_eq!(unwrap_host_string(r#""abc""#), "abc");
        assert_eq!(unwrap_host_string(r#""{\"a\":1}""#), r#"{"a":1}"#);
        assert_eq!(unwrap_host_string("1"), "1");
        assert_eq!(unwrap_host_string(r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(unwrap_host_string(r#""unterminated"#), r#""unterminated"#);
    }
}
