//! What every emulated Graph answer shares: the request's IDs and token (`Ctx`), Graph's error shape and
//! headers, and what a collection holds (`Kind`). A leaf, so the endpoint files and the dispatcher in
//! `graph.rs` import it without importing each other back.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde_json::{Value, json};

/// One answer, before it becomes an HTTP response or a `$batch` sub-response.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Option<Value>,
}

impl Answer {
    pub(super) fn error(status: u16, code: &str, message: &str, request_id: &str, client_request_id: &str) -> Self {
        let date = time::OffsetDateTime::now_utc()
            .format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        Self {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: Some(json!({ "error": { "code": code, "message": message, "innerError": {
                "date": date, "request-id": request_id, "client-request-id": client_request_id } } })),
        }
    }
}

pub(super) struct Ctx<'a> {
    pub(super) request_id: String,
    pub(super) client_request_id: String,
    pub(super) authorization: Option<&'a str>,
    /// Serial of the issued token in `authorization`, for the log.
    pub(super) token: Option<usize>,
}

impl Ctx<'_> {
    pub(super) fn error(&self, status: u16, code: &str, message: &str) -> Answer {
        Answer::error(status, code, message, &self.request_id, &self.client_request_id)
    }

    /// A response with the headers Graph puts on every answer.
    pub(super) fn builder(&self, status: u16) -> HttpResponseBuilder {
        let mut response = HttpResponse::build(StatusCode::from_u16(status).expect("valid status"));
        response
            .insert_header(("request-id", self.request_id.as_str()))
            .insert_header(("client-request-id", self.client_request_id.as_str()))
            .insert_header((
                "x-ms-ags-diagnostic",
                r#"{"ServerInfo":{"DataCenter":"Emulated","Slice":"E","Ring":"5","ScaleUnit":"003","RoleInstance":"EMU01"}}"#,
            ))
            .insert_header(("Strict-Transport-Security", "max-age=31536000"))
            .insert_header(("Cache-Control", "no-cache"));
        response
    }

    pub(super) fn http_error(&self, status: u16, code: &str, message: &str) -> HttpResponse {
        to_response(self, self.error(status, code, message))
    }
}

pub(super) fn to_response(ctx: &Ctx<'_>, answer: Answer) -> HttpResponse {
    let mut response = ctx.builder(answer.status);
    for (name, value) in &answer.headers {
        response.insert_header((*name, value.as_str()));
    }
    match answer.body {
        Some(body) => response.body(body.to_string()),
        None => response.insert_header(("Content-Length", "0")).finish(),
    }
}

/// What a collection holds (the reprocess and list endpoints share the names).
pub(super) enum Kind {
    Assignment,
    Request,
}

impl Kind {
    /// The collection's entity under that API version's name for it (`beta` also takes v1.0's name for
    /// requests).
    pub(super) fn of(version: &str, collection: &str) -> Option<Self> {
        match (version, collection) {
            ("v1.0", "assignments") | ("beta", "accessPackageAssignments") => Some(Self::Assignment),
            ("v1.0", "assignmentRequests") | ("beta", "accessPackageAssignmentRequests" | "assignmentRequests") => {
                Some(Self::Request)
            }
            _ => None,
        }
    }
}
