//! Function and binding names, exactly as the `function.json` files spell them (the host matches
//! `Outputs` keys to binding names case-sensitively).

/// The HTTP trigger and HTTP output bindings, named alike in every HTTP function's `function.json`.
pub const HTTP_REQUEST: &str = "req";
pub const HTTP_RESPONSE: &str = "res";

/// `function-reprocess/function.json`.
pub mod http {
    pub const FUNCTION: &str = "function-reprocess";
    /// Queue output for work split into messages (large calls, fan-out).
    pub const ENQUEUE: &str = "enqueue";
}

/// `function-reprocess-queue/function.json`.
pub mod queue {
    pub const FUNCTION: &str = "function-reprocess-queue";
    pub const MESSAGE: &str = "message";
    pub const ENQUEUE: &str = "enqueue";
    pub const DEAD_LETTER: &str = "deadLetter";
}

/// `function-reprocess-alert/function.json`: Azure Monitor action-group webhooks.
pub mod alert {
    pub const FUNCTION: &str = "function-reprocess-alert";
    pub const ENQUEUE: &str = "enqueue";
}

/// `function-openapi/function.json`: GET /api/openapi, the OpenAPI document (HTTP output only).
pub mod openapi {
    pub const FUNCTION: &str = "function-openapi";
}

/// `function-operations/function.json`: `GET /api/operations/{correlationId}`.
pub mod operations {
    pub const FUNCTION: &str = "function-operations";
    /// The route value naming the operation.
    pub const ID_PARAM: &str = "correlationId";
}

/// `function-operations-cleanup/function.json`: the timer that deletes expired operation state.
pub mod cleanup {
    pub const FUNCTION: &str = "function-operations-cleanup";
}
/// `function-heal-timer/function.json`: the scheduled heal (`schedule: %HEAL_SCHEDULE%`).
pub mod timer {
    pub const FUNCTION: &str = "function-heal-timer";
    pub const TIMER: &str = "timer";
    pub const ENQUEUE: &str = "enqueue";
}
