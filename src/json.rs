//! Strict JSON for text a caller wrote (HTTP bodies, queue messages, alert payloads).
//!
//! `serde_json::from_str::<Value>` keeps the *last* of two equal keys, so
//! `{"assignmentIds":["A"],"assignmentIds":["B"]}` would silently lose A. Here a duplicate key at any
//! depth refuses the whole text and names the key's path, and the number of JSON values is capped so
//! the tree built from a body stays small (a 1 MiB body of `[0,0,…]` would otherwise be ~16 MB of
//! `Value`s). The nesting limit is serde_json's own (128).

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::{Cell, RefCell};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    #[error("duplicate key {path}: each key may appear once (a repeated key would hide the first one's IDs)")]
    DuplicateKey { path: String },
    #[error("more than {limit} JSON values; no valid request is that large")]
    TooManyValues { limit: usize },
    #[error("{0}")]
    Syntax(String),
}

/// Values allowed in one text whose target lists may hold `max_ids` IDs: every ID twice over (singular
/// and list forms, duplicates) plus room for the rest of an alert payload.
pub fn value_budget(max_ids: usize) -> usize {
    max_ids.saturating_mul(2).max(10_000) + 10_000
}

/// Parses `text` as one JSON value, refusing duplicate keys and more than `max_values` values.
pub fn parse_strict(text: &str, max_values: usize) -> Result<Value, StrictJsonError> {
    let state = State {
        remaining: Cell::new(max_values),
        limit: max_values,
        failure: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Node {
        state: &state,
        path: &Path::Root,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match result {
        Ok(value) => Ok(value),
        Err(e) => Err(state
            .failure
            .into_inner()
            .unwrap_or(StrictJsonError::Syntax(e.to_string()))),
    }
}

struct State {
    remaining: Cell<usize>,
    limit: usize,
    /// The structured reason when the visitor itself refused (serde only carries a string).
    failure: RefCell<Option<StrictJsonError>>,
}

impl State {
    fn count<E: de::Error>(&self) -> Result<(), E> {
        match self.remaining.get().checked_sub(1) {
            Some(left) => {
                self.remaining.set(left);
                Ok(())
            }
            None => Err(self.fail(StrictJsonError::TooManyValues { limit: self.limit })),
        }
    }

    fn fail<E: de::Error>(&self, error: StrictJsonError) -> E {
        let message = error.to_string();
        *self.failure.borrow_mut() = Some(error);
        E::custom(message)
    }
}

/// Where a value sits, built on the stack and only formatted for an error.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Key(parent, key) => {
                let shown = crate::domain::text::shown(key, 64);
                write!(f, "{parent}.{shown}")
            }
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

#[derive(Clone, Copy)]
struct Node<'s, 'p> {
    state: &'s State,
    path: &'p Path<'p>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.state.count()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.state.count()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.state.count()?;
        let mut items = Vec::new();
        loop {
            let path = Path::Index(self.path, items.len());
            let node = Node {
                state: self.state,
                path: &path,
            };
            match seq.next_element_seed(node)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        self.state.count()?;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                let path = Path::Key(self.path, &key).to_string();
                return Err(self.state.fail(StrictJsonError::DuplicateKey { path }));
            }
            let path = Path::Key(self.path, &key);
            let value = access.next_value_seed(Node {
                state: self.state,
                path: &path,
            })?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicate_keys_at_any_depth_and_names_them() {
        let top = parse_strict(r#"{"assignmentIds":["A"],"assignmentIds":["B"]}"#, 100).unwrap_err();
        assert_eq!(
            top,
            StrictJsonError::DuplicateKey {
                path: "$.assignmentIds".into()
            }
        );
        let deep = parse_strict(r#"{"data":{"x":[{"name":"a","name":"b"}]}}"#, 100).unwrap_err();
        assert_eq!(
            deep,
            StrictJsonError::DuplicateKey {
                path: "$.data.x[0].name".into()
            }
        );
        // The same key in different objects is fine; escapes are compared decoded.
        assert!(parse_strict(r#"{"a":{"k":1},"b":{"k":2}}"#, 100).is_ok());
        assert!(matches!(
            parse_strict(r#"{"k":1,"\u006b":2}"#, 100),
            Err(StrictJsonError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn caps_values_and_reports_syntax() {
        assert!(parse_strict("[1,2,3]", 4).is_ok());
        assert_eq!(
            parse_strict("[1,2,3,4]", 4),
            Err(StrictJsonError::TooManyValues { limit: 4 })
        );
        assert!(matches!(parse_strict("{", 10), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(parse_strict("1 2", 10), Err(StrictJsonError::Syntax(_))));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(matches!(
            parse_strict(&deep, 1_000_000),
            Err(StrictJsonError::Syntax(_))
        ));
    }
}
