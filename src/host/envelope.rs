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
    /// Not the envelope's fault: the operation state could not be recorded, so the invocation must fail
    /// and the host retry the message (`functions::queue_track`).
    #[error("the operation state could not be recorded: {0}")]
    State(String),
}

#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(rename = "Data", alias = "data", default)]
    pub data: Map<String, Value>,
    /// Only scalar entries: the host copies a JSON body's or message's object properties here as
    /// nested objects (`Utility.ApplyBindingData`), which nothing reads, so they are skipped unbuilt.
    #[serde(rename = "Metadata", alias = "metadata", default, deserialize_with = "scalars_only")]
    pub metadata: Map<String, Value>,
}

fn scalars_only<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Map<String, Value>, D::Error> {
    struct Scalars;
    impl<'de> serde::de::Visitor<'de> for Scalars {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the Metadata object")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Map::new())
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = Map::new();
            while let Some(key) = access.next_key::<String>()? {
                if let Scalar(Some(value)) = access.next_value::<Scalar>()? {
                    map.insert(key, value);
                }
            }
            Ok(map)
        }
    }
    deserializer.deserialize_any(Scalars)
}

/// A metadata value: strings, numbers and booleans are kept; objects and arrays are skipped.
struct Scalar(Option<Value>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a metadata value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::Bool(v))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.into())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.into())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(serde_json::Number::from_f64(v).map(Value::Number)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::String(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(Some(Value::String(v))))
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Scalar(None))
            }
        }
        deserializer.deserialize_any(V)
    }
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
