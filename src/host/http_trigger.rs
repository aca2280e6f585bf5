//! HTTP trigger input: `Data.<name>` is `HttpRequestExtensions.GetRequestAsJObject` —
//! `Url`, `Method`, `Query` (`{key: "v1,v2"}`), `Headers` (`{name: ["v"]}`), `Params`, `Identities`,
//! and `Body` only when the request had `Content-Length > 0` (a chunked request arrives without it).
//! Octet-stream and multipart bodies arrive base64-encoded; JSON arrives as text.

use super::envelope::{Envelope, EnvelopeError};
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct HttpTrigger {
    pub method: String,
    pub url: String,
    pub query: Map<String, Value>,
    pub headers: Map<String, Value>,
    /// Route values (`Params`, e.g. `{"correlationId": "…"}` for `operations/{correlationId}`).
    pub params: Map<String, Value>,
    pub body: Option<String>,
}

impl HttpTrigger {
    pub fn from_envelope(envelope: &Envelope, binding: &'static str) -> Result<Self, EnvelopeError> {
        let req = match envelope.data.get(binding) {
            Some(Value::Object(req)) => req,
            Some(other) => {
                return Err(EnvelopeError::Shape {
                    name: binding,
                    reason: format!("expected an object, got {other}"),
                });
            }
            None => return Err(EnvelopeError::MissingInput(binding)),
        };
        let text = |key: &str| get_ci(req, key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let object = |key: &str| match get_ci(req, key) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let body = match get_ci(req, "Body") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            // Not sent by the host today, but an object body is unambiguous JSON.
            Some(other) => Some(other.to_string()),
        };
        Ok(Self {
            method: text("Method"),
            url: text("Url"),
            query: object("Query"),
            headers: object("Headers"),
            params: object("Params"),
            body,
        })
    }

    /// First value of a header, case-insensitively (`Headers` values are arrays of strings).
    pub fn header(&self, name: &str) -> Option<&str> {
        match get_ci(&self.headers, name)? {
            Value::Array(values) => values.first().and_then(Value::as_str),
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A route value, case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        get_ci(&self.params, name).and_then(Value::as_str)
    }

    /// A query parameter, case-insensitively (repeated keys arrive joined with `,`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        get_ci(&self.query, name).and_then(Value::as_str)
    }
}

fn get_ci<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}
