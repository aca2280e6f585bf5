//! Builds invocation envelopes the way the Functions host does, for the sandbox and the tests.
//! Byte-level captures with their sources are in `tests/fixtures/host/` and a test checks that this
//! builder reproduces them exactly.
//!
//! Rules followed (azure-functions-host `ScriptInvocationContextExtensions.GetHttpScriptInvocationContextValue`,
//! `Utility.ApplyBindingData`; azure-sdk-for-net `QueueTriggerBinding.CreateBindingData`):
//! strings are JSON-encoded a second time, longs become `"1"`, `sys` follows the trigger's own binding
//! data, and a JSON message's top-level non-array, non-null properties overwrite keys in place
//! (case-insensitively) or are appended after `sys`.

use serde_json::{Map, Value, json};

/// Values the host fills in per message/invocation; fixed in tests so output can be compared byte for byte.
#[derive(Debug, Clone)]
pub struct QueueMessageMeta {
    pub dequeue_count: u32,
    pub expiration_time: String,
    pub id: String,
    pub insertion_time: String,
    pub next_visible_time: String,
    pub pop_receipt: String,
    pub utc_now: String,
    pub rand_guid: String,
}

impl QueueMessageMeta {
    /// Plausible values for a message dequeued now.
    pub fn now(dequeue_count: u32) -> Self {
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]+00:00"
            ))
            .unwrap_or_default()
        };
        let now = time::OffsetDateTime::now_utc();
        Self {
            dequeue_count,
            expiration_time: fmt(now + time::Duration::days(7)),
            id: crate::guid::random(),
            insertion_time: fmt(now),
            next_visible_time: fmt(now + time::Duration::minutes(10)),
            pop_receipt: "AgAAAAMAAAAAAAAAemulated=".into(),
            utc_now: now
                .format(&time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
                ))
                .unwrap_or_default(),
            rand_guid: crate::guid::random(),
        }
    }
}

fn host_string(s: &str) -> Value {
    Value::String(serde_json::to_string(s).expect("strings serialize"))
}

fn sys(function: &str, utc_now: &str, rand_guid: &str) -> Value {
    json!({ "MethodName": function, "UtcNow": utc_now, "RandGuid": rand_guid })
}

/// `Utility.ApplyBindingData` + `ConvertPropertyValue`, then the envelope's second encoding.
fn apply_json_properties(metadata: &mut Map<String, Value>, text: &str) {
    let trimmed = text.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        return;
    }
    let Ok(Value::Object(properties)) = serde_json::from_str::<Value>(trimmed) else {
        return;
    };
    for (key, value) in properties {
        let converted = match value {
            Value::Null | Value::Array(_) => continue,
            Value::Object(o) => Value::Object(o),
            Value::String(s) => host_string(&s),
            Value::Bool(b) => host_string(if b { "True" } else { "False" }),
            Value::Number(n) => host_string(&n.to_string()),
        };
        let existing = metadata.keys().find(|k| k.eq_ignore_ascii_case(&key)).cloned();
        match existing {
            Some(existing) => {
                metadata.insert(existing, converted);
            }
            None => {
                metadata.insert(key, converted);
            }
        }
    }
}

/// The body the host POSTs to `/{function}` for a queue message.
pub fn queue_envelope(function: &str, binding: &str, text: &str, meta: &QueueMessageMeta) -> String {
    let mut metadata = Map::new();
    metadata.insert("DequeueCount".into(), Value::String(meta.dequeue_count.to_string()));
    metadata.insert("ExpirationTime".into(), Value::String(meta.expiration_time.clone()));
    metadata.insert("Id".into(), host_string(&meta.id));
    metadata.insert("InsertionTime".into(), Value::String(meta.insertion_time.clone()));
    metadata.insert("NextVisibleTime".into(), Value::String(meta.next_visible_time.clone()));
    metadata.insert("PopReceipt".into(), host_string(&meta.pop_receipt));
    metadata.insert("sys".into(), sys(function, &meta.utc_now, &meta.rand_guid));
    apply_json_properties(&mut metadata, text);
    let mut data = Map::new();
    data.insert(binding.into(), host_string(text));
    json!({ "Data": data, "Metadata": metadata }).to_string()
}

/// The body the host POSTs for a timer trigger: `Data.<binding>` is the `TimerInfo` object itself
/// (`JObject.FromObject`, not a string), `Metadata` only `sys` (the `TimerTrigger` binding data key ends
/// in "trigger" and is dropped). Shape as KarlGW/azfunc `trigger/timer_test.go` captures it.
pub fn timer_envelope(function: &str, binding: &str, is_past_due: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let mut data = Map::new();
    data.insert(
        binding.into(),
        json!({
            "Schedule": { "AdjustForDST": true },
            "ScheduleStatus": { "Last": stamp(now - time::Duration::hours(1)), "Next": stamp(now + time::Duration::hours(1)),
                                "LastUpdated": stamp(now - time::Duration::hours(1)) },
            "IsPastDue": is_past_due
        }),
    );
    let mut metadata = Map::new();
    metadata.insert("sys".into(), sys(function, &stamp(now), &crate::guid::random()));
    json!({ "Data": data, "Metadata": metadata }).to_string()
}

/// A caller's HTTP request as the host's front end saw it.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub url: String,
    pub method: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// `None` when the caller sent no body or sent it chunked (the host drops chunked bodies).
    pub body: Option<String>,
    pub function_key_name: Option<String>,
    pub utc_now: String,
    pub rand_guid: String,
    /// Route values (`Params`), e.g. `correlationId` for `operations/{correlationId}`.
    pub params: Vec<(String, String)>,
}

impl HttpCall {
    /// A GET of an absolute URL the handler gave out (a `Location` or `nextLink`), routed as the host
    /// routes `operations/{correlationId}`: the last path segment becomes the route value, the query is
    /// parsed as the front end does. `None` for a URL that is not such a status URL.
    pub fn get_status_url(url: &str) -> Option<Self> {
        let parsed = url::Url::parse(url).ok()?;
        let mut segments: Vec<&str> = parsed.path_segments()?.collect();
        let id = segments.pop()?.to_owned();
        if segments.last() != Some(&"operations") {
            return None;
        }
        let meta = QueueMessageMeta::now(1);
        let host = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str()?),
            None => parsed.host_str()?.to_owned(),
        };
        Some(Self {
            url: url.to_owned(),
            method: "GET".into(),
            query: parsed.query_pairs().into_owned().collect(),
            headers: vec![("Host".into(), host)],
            body: None,
            function_key_name: Some("default".into()),
            utc_now: meta.utc_now,
            rand_guid: meta.rand_guid,
            params: vec![("correlationId".into(), id)],
        })
    }

    /// A POST of `body` to `/api/{route}` with a valid function key named `default`.
    pub fn post_json(route: &str, body: &str) -> Self {
        let meta = QueueMessageMeta::now(1);
        Self {
            url: format!("https://localhost/api/{route}"),
            method: "POST".into(),
            query: Vec::new(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Host".into(), "localhost".into()),
                ("Content-Length".into(), body.len().to_string()),
            ],
            body: Some(body.to_owned()),
            function_key_name: Some("default".into()),
            utc_now: meta.utc_now,
            rand_guid: meta.rand_guid,
            params: Vec::new(),
        }
    }
}

fn identities(key_name: Option<&str>) -> Value {
    const STRING: &str = "http://www.w3.org/2001/XMLSchema#string";
    let claim = |kind: &str, value: &str| {
        json!({ "Issuer": "LOCAL AUTHORITY", "OriginalIssuer": "LOCAL AUTHORITY", "Properties": {},
                "Type": format!("http://schemas.microsoft.com/2017/07/functions/claims/{kind}"), "Value": value, "ValueType": STRING })
    };
    let (auth_type, authenticated, claims) = match key_name {
        Some(name) => (
            json!("WebJobsAuthLevel"),
            true,
            json!([
                claim("authlevel", "Function"),
                claim("invoke", "true"),
                claim("keyid", name)
            ]),
        ),
        None => (Value::Null, false, json!([])),
    };
    json!([{ "AuthenticationType": auth_type, "IsAuthenticated": authenticated, "Actor": null, "BootstrapContext": null,
             "Claims": claims, "Label": null, "Name": null,
             "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
             "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role" }])
}

/// The body the host POSTs to `/{function}` for an HTTP-triggered call (`HttpRequestExtensions.GetRequestAsJObject`
/// for `Data.req`; `HttpTriggerAttributeBindingProvider.GetBindingData` for `Metadata`).
pub fn http_envelope(function: &str, binding: &str, call: &HttpCall) -> String {
    // ASP.NET's query and header collections are case-insensitive and keep every value of a repeated
    // key: `Data.req` joins them with "," (`GetQueryCollectionAsDictionary`), while binding data keeps
    // the last query value (`GetQueryParameterDictionary`) and joins header values.
    let query_values = group_ci(&call.query);
    let mut query = Map::new();
    let mut last_query = Map::new();
    for (k, values) in &query_values {
        query.insert(k.clone(), Value::String(values.join(",")));
        last_query.insert(k.clone(), Value::String(values.last().cloned().unwrap_or_default()));
    }
    let mut headers = Map::new();
    let mut joined_headers = Map::new();
    for (k, values) in group_ci(&call.headers) {
        headers.insert(k.clone(), json!(values));
        joined_headers.insert(k, Value::String(values.join(",")));
    }
    let mut req = Map::new();
    req.insert("Url".into(), Value::String(call.url.clone()));
    req.insert("Method".into(), Value::String(call.method.clone()));
    req.insert("Query".into(), Value::Object(query.clone()));
    req.insert("Headers".into(), Value::Object(headers));
    let params: Map<String, Value> = call
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    req.insert("Params".into(), Value::Object(params.clone()));
    req.insert("Identities".into(), identities(call.function_key_name.as_deref()));
    if let Some(body) = call.body.as_ref().filter(|b| !b.is_empty()) {
        req.insert("Body".into(), Value::String(body.clone()));
    }

    let mut metadata = Map::new();
    if let Some(body) = call.body.as_ref().filter(|b| !b.is_empty()) {
        apply_json_properties(&mut metadata, body);
    }
    for (k, values) in &query_values {
        if !k.eq_ignore_ascii_case("code") {
            metadata.insert(k.clone(), host_string(values.last().map_or("", String::as_str)));
        }
    }
    // Route values come after the query parameters (`GetBindingData`).
    for (k, v) in &params {
        metadata.insert(k.clone(), host_string(v.as_str().unwrap_or("")));
    }
    let has = |m: &Map<String, Value>, key: &str| m.keys().any(|k| k.eq_ignore_ascii_case(key));
    if !has(&metadata, "Query") {
        metadata.insert("Query".into(), Value::Object(last_query));
    }
    if !has(&metadata, "Headers") {
        metadata.insert("Headers".into(), Value::Object(joined_headers));
    }
    metadata.insert("sys".into(), sys(function, &call.utc_now, &call.rand_guid));
    let mut data = Map::new();
    data.insert(binding.into(), Value::Object(req));
    json!({ "Data": data, "Metadata": metadata }).to_string()
}

/// Values per key, keys compared case-insensitively and spelled as first seen, in first-seen order.
fn group_ci(pairs: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in pairs {
        match grouped.iter_mut().find(|(key, _)| key.eq_ignore_ascii_case(k)) {
            Some((_, values)) => values.push(v.clone()),
            None => grouped.push((k.clone(), vec![v.clone()])),
        }
    }
    grouped
}

/// Standard base64 with padding: how the host hands over octet-stream and multipart bodies.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_query_keys_are_joined_in_data_and_last_wins_in_metadata() {
        let mut call = HttpCall::post_json("reprocess", "{}");
        call.query = vec![("dryRun".into(), "true".into()), ("DRYRUN".into(), "false".into())];
        let envelope: Value = serde_json::from_str(&http_envelope("f", "req", &call)).unwrap();
        assert_eq!(envelope["Data"]["req"]["Query"], json!({ "dryRun": "true,false" }));
        assert_eq!(envelope["Metadata"]["Query"], json!({ "dryRun": "false" }));
        assert_eq!(envelope["Metadata"]["dryRun"], "\"false\"");
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
