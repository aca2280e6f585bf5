//! One file per function folder: decode the host envelope → run the service → encode the reply.
//! Binding names here must match the `function.json` files exactly (the host matches them
//! case-sensitively).

pub mod http_reprocess;
pub mod queue_reprocess;

use serde_json::{Value, json};

/// `function-reprocess/function.json`.
pub mod http_bindings {
    pub const FUNCTION: &str = "function-reprocess";
    pub const REQUEST: &str = "req";
    pub const RESPONSE: &str = "res";
    /// Queue output for work split into messages (large calls, fan-out).
    pub const ENQUEUE: &str = "enqueue";
}

/// `function-reprocess-queue/function.json`.
pub mod queue_bindings {
    pub const FUNCTION: &str = "function-reprocess-queue";
    pub const MESSAGE: &str = "message";
    pub const ENQUEUE: &str = "enqueue";
    pub const DEAD_LETTER: &str = "deadLetter";
}

/// The JSON error body every 4xx/5xx from the HTTP functions uses.
pub fn error_body(code: &str, message: &str, extra: Value) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let (Value::Object(target), Value::Object(extra)) = (&mut error, extra) {
        target.extend(extra);
    }
    json!({ "error": error })
}
