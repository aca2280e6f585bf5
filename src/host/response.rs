//! The reply the host reads with `ReadAsAsync<HttpScriptInvocationResult>()`
//! (`DefaultHttpWorkerService.ProcessDefaultInvocationRequest`) and turns into outputs
//! (`HttpScriptInvocationResultExtensions.ToScriptInvocationResult`). Rules that shape this file:
//! - it must be a JSON object with `Content-Type: application/json`: an empty body or `null` never completes
//!   the invocation, which then hangs until `functionTimeout`;
//! - `Outputs` keys are matched to binding names case-sensitively;
//! - a top-level *string* output that happens to be valid base64 is decoded to bytes (`GetBindingValue`),
//!   so queue outputs are always sent as arrays (one message per element, `FunctionBinding.ReadAsEnumerable`);
//! - `res` is deserialized into `HttpOutputBindingResponse {StatusCode, Status, Body, Headers}`; a string
//!   `Body` is written as-is with the given Content-Type (`RawScriptResult`).

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Default, Serialize)]
pub struct InvokeResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
}

impl InvokeResponse {
    pub fn log(&mut self, line: impl Into<String>) {
        self.logs.push(line.into());
    }

    /// Sets an HTTP output binding.
    pub fn http(&mut self, binding: &str, reply: HttpReply) {
        self.outputs.insert(binding.to_owned(), reply.into_value());
    }

    /// Appends queue messages to a queue output binding. Each message is a JSON text; sending an array of
    /// strings makes each element one message holding exactly that text. No messages, no output.
    pub fn enqueue(&mut self, binding: &str, messages: impl IntoIterator<Item = String>) {
        let mut messages = messages.into_iter().peekable();
        if messages.peek().is_none() {
            return;
        }
        let entry = self
            .outputs
            .entry(binding.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.extend(messages.map(Value::String));
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("Value maps always serialize")
    }
}

/// What the caller of an HTTP-triggered function receives.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl HttpReply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn into_value(self) -> Value {
        let mut headers = Map::new();
        headers.insert("Content-Type".into(), Value::String("application/json".into()));
        for (name, value) in self.headers {
            headers.insert(name, Value::String(value));
        }
        serde_json::json!({
            // `HttpOutputBindingResponse.StatusCode` is a string; `TryParseStatusCode` parses it.
            "statusCode": self.status.to_string(),
            "headers": headers,
            // A string body is written verbatim, so the caller gets compact JSON with our Content-Type.
            "body": self.body.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_outputs_are_arrays_of_strings() {
        let mut r = InvokeResponse::default();
        // "true" and "1234" are valid base64: as top-level strings the host would decode them to bytes.
        r.enqueue("enqueue", ["1234".to_string(), "true".to_string()]);
        let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["Outputs"]["enqueue"], serde_json::json!(["1234", "true"]));
        assert_eq!(v["Logs"], serde_json::json!([]));
    }

    #[test]
    fn http_reply_shape() {
        let mut r = InvokeResponse::default();
        r.http(
            "res",
            HttpReply::json(503, serde_json::json!({"a":1})).with_header("Retry-After", "10"),
        );
        let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["Outputs"]["res"]["statusCode"], "503");
        assert_eq!(v["Outputs"]["res"]["body"], r#"{"a":1}"#);
        assert_eq!(v["Outputs"]["res"]["headers"]["Retry-After"], "10");
        assert_eq!(v["Outputs"]["res"]["headers"]["Content-Type"], "application/json");
    }
}
