//! Emulated Graph reads: `GET …/assignments` (v1.0) and `…/accessPackageAssignments` (beta) with the
//! `$filter` forms the docs show, `$expand`, `$select`, `$top` and server-driven paging through an
//! `@odata.nextLink` that repeats every query option and adds `$skiptoken`; and `GET` of one assignment
//! or request. Unsupported filters get Graph's 400 error shape, so a wrong filter fails a test instead
//! of silently matching everything.

use super::EmulatorState;
use super::answer::{Ctx, Kind};
use super::faults::Fault;
use super::items::{options, parse_expand, read_item, render_assignment};
use super::tenant::Assignment;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

const EM: [&str; 2] = ["identityGovernance", "entitlementManagement"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Clause {
    State(String),
    Package(String),
    Target(String),
}

pub(super) fn respond(request: &HttpRequest, state: &EmulatorState, ctx: &Ctx, segments: &[&str]) -> HttpResponse {
    let (version, collection, id) = match segments {
        [version @ ("v1.0" | "beta"), a, b, collection] if [*a, *b] == EM => (*version, *collection, None),
        [version @ ("v1.0" | "beta"), a, b, collection, id] if [*a, *b] == EM => (*version, *collection, Some(*id)),
        _ => {
            return ctx.http_error(
                400,
                "BadRequest",
                &format!("Invalid request URL '{}'.", request.uri().path()),
            );
        }
    };
    let query = request.uri().query().unwrap_or("");
    if let Some(id) = id {
        if let Some(response) = injected_fault(state, ctx, id) {
            return response;
        }
        return match read_item(state, version, collection, id, query) {
            Ok(body) => json_ok(ctx, body),
            Err((status, code, message)) => ctx.http_error(status, code, &message),
        };
    }
    let Some(kind) = Kind::of(version, collection) else {
        return ctx.http_error(
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{collection}'."),
        );
    };
    let options = match options(query) {
        Ok(options) => options,
        Err((status, code, message)) => return ctx.http_error(status, code, &message),
    };
    let option = |name: &str| options.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let Some(response) = injected_fault(state, ctx, "list") {
        return response;
    }
    if !*state.app_role_granted.lock().expect("role lock") {
        return ctx.http_error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let expand = parse_expand(option("$expand").unwrap_or(""));
    let tenant = state.tenant.lock().expect("tenant lock");
    let beta = version == "beta";
    match kind {
        Kind::Request => ctx.http_error(400, "BadRequest", "Listing requests is not emulated."),
        Kind::Assignment => {
            let clauses = match parse_filter(beta, option("$filter").unwrap_or("")) {
                Ok(clauses) => clauses,
                Err(message) => return ctx.http_error(400, "BadRequest", &message),
            };
            let page_size = match option("$top").map(str::parse::<usize>) {
                None => state.page_size(),
                Some(Ok(top)) if (1..=999).contains(&top) => top.min(state.page_size()),
                Some(_) => {
                    return ctx.http_error(400, "BadRequest", "Invalid value for $top: it must be from 1 to 999.");
                }
            };
            let offset = match option("$skiptoken").map(decode_skiptoken) {
                None => 0,
                Some(Some(offset)) => offset,
                Some(None) => return ctx.http_error(400, "BadRequest", "The $skiptoken is invalid or expired."),
            };
            let matching: Vec<&Assignment> = tenant
                .sorted_assignments()
                .into_iter()
                .filter(|a| clauses.iter().all(|c| matches(c, a)))
                .collect();
            let value: Vec<Value> = matching
                .iter()
                .skip(offset)
                .take(page_size)
                .map(|a| render_assignment(&tenant, a, beta, &expand))
                .collect();
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                json!(format!("{}/{version}/$metadata#{collection}", state.base_url())),
            );
            body.insert("value".into(), Value::Array(value));
            if offset + page_size < matching.len() {
                body.insert(
                    "@odata.nextLink".into(),
                    json!(next_link(state, request, offset + page_size)),
                );
            }
            json_ok(ctx, Value::Object(body))
        }
    }
}

pub(super) fn json_ok(ctx: &Ctx, body: Value) -> HttpResponse {
    ctx.builder(200).content_type("application/json").body(body.to_string())
}

pub(super) fn injected_fault(state: &EmulatorState, ctx: &Ctx, key: &str) -> Option<HttpResponse> {
    match state.faults.next_for(key)? {
        Fault::Status { status, retry_after } => {
            let mut response = ctx.http_error(status, "TooManyRequests", "Please retry again later.");
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(seconds),
                );
            }
            Some(response)
        }
        Fault::Busy { retry_after } => {
            let mut response = ctx.http_error(429, "TooManyRequests", "Please retry again later.");
            let headers = response.headers_mut();
            headers.insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(retry_after),
            );
            headers.insert(
                actix_web::http::header::HeaderName::from_static("x-ms-throttle-information"),
                actix_web::http::header::HeaderValue::from_static("CPULimitExceeded"),
            );
            Some(response)
        }
        Fault::Hang(_) | Fault::ExecutedThen(_) => {
            Some(ctx.http_error(504, "gatewayTimeout", "The gateway did not receive a timely response."))
        }
    }
}

/// The filter forms of the list pages: `<property> eq '<value>'` clauses joined by `and`. Property
/// names are case-insensitive as in Graph (`target/objectid` in the docs, `objectId` in the schema).
fn parse_filter(beta: bool, filter: &str) -> Result<Vec<Clause>, String> {
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    let lower = filter.to_ascii_lowercase();
    let mut clauses = Vec::new();
    let mut rest = (filter, lower.as_str());
    loop {
        let (clause, next) = match rest.1.find(" and ") {
            Some(at) => (&rest.0[..at], Some((&rest.0[at + 5..], &rest.1[at + 5..]))),
            None => (rest.0, None),
        };
        clauses.push(parse_clause(beta, clause.trim())?);
        match next {
            Some(next) => rest = next,
            None => return Ok(clauses),
        }
    }
}

fn parse_clause(beta: bool, clause: &str) -> Result<Clause, String> {
    let invalid = || format!("Invalid filter clause: '{clause}'. Supported: <property> eq '<value>' joined by 'and'.");
    let mut parts = clause.splitn(3, ' ');
    let (Some(property), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    if !op.eq_ignore_ascii_case("eq") {
        return Err(invalid());
    }
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .filter(|v| !v.contains('\''))
        .ok_or_else(invalid)?
        .to_owned();
    let type_name = "microsoft.graph.accessPackageAssignment";
    match property.to_ascii_lowercase().as_str() {
        "state" if !beta => Ok(Clause::State(value)),
        "assignmentstate" if beta => Ok(Clause::State(value)),
        "accesspackage/id" => Ok(Clause::Package(value)),
        "target/objectid" => Ok(Clause::Target(value)),
        _ => Err(format!(
            "Could not find a property named '{property}' on type '{type_name}', or it does not support filtering."
        )),
    }
}

fn matches(clause: &Clause, a: &Assignment) -> bool {
    match clause {
        Clause::State(s) => a.state.eq_ignore_ascii_case(s),
        Clause::Package(id) => a.access_package_id.eq_ignore_ascii_case(id),
        Clause::Target(id) => a.target_object_id.eq_ignore_ascii_case(id),
    }
}

/// Every query option as received (still encoded), minus the old `$skiptoken`, plus the new one.
pub(super) fn next_link(state: &EmulatorState, request: &HttpRequest, offset: usize) -> String {
    let mut query: Vec<&str> = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken="))
        .collect();
    let token = format!("$skiptoken={}", encode_skiptoken(offset));
    query.push(&token);
    format!(
        "{}{}?{}",
        state.next_link_origin(),
        request.uri().path(),
        query.join("&")
    )
}

/// Opaque-looking but checkable: `RFNwdF` + hex offset + a check digit.
fn encode_skiptoken(offset: usize) -> String {
    format!("RFNwdF{offset:x}x{}", offset % 7)
}

pub(super) fn decode_skiptoken(token: &str) -> Option<usize> {
    let (hex, check) = token.strip_prefix("RFNwdF")?.split_once('x')?;
    let offset = usize::from_str_radix(hex, 16).ok()?;
    (check.parse::<usize>().ok()? == offset % 7).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_the_documented_forms() {
        let f = "state eq 'delivered' and accessPackage/id eq 'A' AND target/objectid eq 'B'";
        assert_eq!(
            parse_filter(false, f).unwrap(),
            [
                Clause::State("delivered".into()),
                Clause::Package("A".into()),
                Clause::Target("B".into())
            ]
        );
        assert_eq!(
            parse_filter(true, "assignmentState eq 'Delivered'").unwrap(),
            [Clause::State("Delivered".into())]
        );
        for bad in [
            "state ne 'delivered'",
            "state eq delivered",
            "assignmentState eq 'Delivered'",
            "startswith(state,'d')",
            "state eq 'a' or state eq 'b'",
            "state eq 'x'' or 1 eq '1'",
        ] {
            assert!(parse_filter(false, bad).is_err(), "{bad}");
        }
        assert!(parse_filter(true, "state eq 'Delivered'").is_err());
    }

    #[test]
    fn skiptokens_round_trip_and_reject_garbage() {
        for offset in [0, 100, 12345] {
            assert_eq!(decode_skiptoken(&encode_skiptoken(offset)), Some(offset));
        }
        assert_eq!(decode_skiptoken("RFNwdF64x0"), None);
        assert_eq!(decode_skiptoken("nope"), None);
    }
}
