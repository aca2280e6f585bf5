//! Timer trigger input. The trigger value is a `TimerInfo` (`TimerTriggerBinding.TriggerValueType`,
//! azure-webjobs-sdk-extensions `src/WebJobs.Extensions/Extensions/Timers/Bindings/TimerTriggerBinding.cs`),
//! not a string, so `GetHttpScriptInvocationContextValue` (`ScriptInvocationContextExtensions.cs`) takes its
//! `JObject.FromObject(value)` branch: `Data.<name>` is a JSON **object**
//! `{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last","Next","LastUpdated"},"IsPastDue":false}`
//! (`ScheduleStatus` is `null` without a schedule monitor), as KarlGW/azfunc's `trigger/timer_test.go`
//! captures it. The binding data key `TimerTrigger` ends in "trigger" and is dropped from `Metadata`; only
//! `sys` remains. A string holding that JSON (double-encoded, as other triggers arrive) is accepted too.

use super::envelope::{Envelope, EnvelopeError, unwrap_host_string};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerTrigger {
    /// The host fired this run late (after a restart or a missed occurrence).
    pub is_past_due: bool,
    /// `ScheduleStatus.Last` / `Next` as the host wrote them (for logs only).
    pub last: Option<String>,
    pub next: Option<String>,
}

impl TimerTrigger {
    pub fn from_envelope(envelope: &Envelope, binding: &'static str) -> Result<Self, EnvelopeError> {
        let value = envelope.data.get(binding).ok_or(EnvelopeError::MissingInput(binding))?;
        let owned;
        let object = match value {
            Value::Object(_) => value,
            Value::String(s) => {
                owned = serde_json::from_str::<Value>(&unwrap_host_string(s)).map_err(|e| EnvelopeError::Shape {
                    name: binding,
                    reason: format!("a string that is not TimerInfo JSON ({e})"),
                })?;
                &owned
            }
            _ => {
                return Err(EnvelopeError::Shape {
                    name: binding,
                    reason: "expected the TimerInfo object".into(),
                });
            }
        };
        let is_past_due = match object.get("IsPastDue") {
            Some(Value::Bool(b)) => *b,
            None | Some(Value::Null) => false,
            Some(_) => {
                return Err(EnvelopeError::Shape {
                    name: binding,
                    reason: "IsPastDue is not a boolean".into(),
                });
            }
        };
        let status = object.get("ScheduleStatus");
        let text = |key: &str| {
            status
                .and_then(|s| s.get(key))
                .and_then(Value::as_str)
                .map(|s| s.chars().take(40).collect::<String>())
        };
        Ok(Self {
            is_past_due,
            last: text("Last"),
            next: text("Next"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_object_the_host_sends_and_a_string_form() {
        let object = r#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":{"Last":"2023-10-12T20:13:49.640002Z","Next":"2023-10-12T21:00:00Z","LastUpdated":"2023-10-12T20:13:49.640002Z"},"IsPastDue":true}},"Metadata":{"sys":{"MethodName":"function-heal-timer"}}}"#;
        let t = TimerTrigger::from_envelope(&Envelope::parse(object.as_bytes()).unwrap(), "timer").unwrap();
        assert!(t.is_past_due);
        assert_eq!(t.next.as_deref(), Some("2023-10-12T21:00:00Z"));
        let string = r#"{"Data":{"timer":"{\"Schedule\":{\"AdjustForDST\":true},\"ScheduleStatus\":null,\"IsPastDue\":false}"},"Metadata":{}}"#;
        let t = TimerTrigger::from_envelope(&Envelope::parse(string.as_bytes()).unwrap(), "timer").unwrap();
        assert!(!t.is_past_due);
        let bad = r#"{"Data":{"timer":42},"Metadata":{}}"#;
        assert!(TimerTrigger::from_envelope(&Envelope::parse(bad.as_bytes()).unwrap(), "timer").is_err());
    }
}
