//! What Graph's answers mean, the same for every caller: the class of a status (done, not found,
//! denied, worth retrying, refused) and Graph's error body (`concepts/errors.md`).

use crate::domain::outcome::GraphError;

/// What a status means, for every caller alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    NotFound,
    /// 401/403: the identity lacks the app role, or its token was refused.
    Denied,
    /// 408, 424, 429 and 5xx gateway/availability answers: try again (after `Retry-After` if named).
    Retryable,
    /// Any other 4xx (or an unexpected status): Graph refused this request as it is.
    Refused,
}

impl StatusClass {
    pub fn of(status: u16) -> Self {
        match status {
            200..=299 => Self::Success,
            404 => Self::NotFound,
            401 | 403 => Self::Denied,
            408 | 424 | 429 | 500 | 502 | 503 | 504 => Self::Retryable,
            _ => Self::Refused,
        }
    }
}

/// "Graph answered 503 (code: message)" for a retryable answer.
pub fn retry_reason(status: u16, body: &[u8]) -> String {
    let detail = parse_graph_error(body)
        .map(|e| format!(" ({}: {})", e.code, e.message))
        .unwrap_or_default();
    format!("Graph answered {status}{detail}")
}

/// Graph's error body: `{"error":{"code":"…","message":"…","innerError":{…}}}` (`concepts/errors.md`).
pub fn parse_graph_error(body: &[u8]) -> Option<GraphError> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    Some(GraphError {
        code: body.error.code,
        message: body.error.message,
    })
}

/// Graph's error, or for a body that is not one, `Http{status}` and the start of the text.
pub fn graph_error_or_text(status: u16, body: &[u8]) -> GraphError {
    parse_graph_error(body).unwrap_or_else(|| GraphError {
        code: format!("Http{status}"),
        message: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_in_one_class_for_every_caller() {
        use StatusClass::*;
        let cases = [
            (200, Success),
            (202, Success),
            (204, Success),
            (404, NotFound),
            (401, Denied),
            (403, Denied),
            (400, Refused),
            (409, Refused),
            (408, Retryable),
            (424, Retryable),
            (429, Retryable),
            (500, Retryable),
            (502, Retryable),
            (503, Retryable),
            (504, Retryable),
            (501, Refused),
        ];
        for (status, class) in cases {
            assert_eq!(StatusClass::of(status), class, "{status}");
        }
    }
}
