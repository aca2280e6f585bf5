//! Emulated Graph reads for drift detection and the heal timer, with the shapes the docs show:
//! - `GET /{v}/groups/{id}/members|owners` (`$select`, `$top` 1–999, `$skiptoken` paging), 403
//!   `Authorization_RequestDenied` without GroupMember.Read.All (`group-list-members.md`);
//! - `GET /{v}/servicePrincipals/{id}/appRoleAssignedTo` (appRoleAssignments with `principalId`,
//!   `appRoleId`, `resourceId`), 403 without Application.Read.All;
//! - `GET …/accessPackages/{id}?$expand=resourceRoleScopes($expand=role,scope)` (beta
//!   `accessPackageResourceRoleScopes($expand=accessPackageResourceRole,accessPackageResourceScope)`);
//! - `GET …/assignmentRequests?$filter=state eq '…'` (beta `accessPackageAssignmentRequests` with
//!   `requestState eq '…'`): only the state filter Graph documents; a filter on `completedDateTime` is
//!   refused as Graph does for a property without filter support;
//! - `DELETE /{v}/groups/{id}/members/{userId}/$ref` (`group-delete-members.md`): the removal by hand.

use super::EmulatorState;
use super::answer::{Ctx, Kind};
use super::directory::{APPLICATION_READ, GROUP_MEMBER_READ, RoleScope};
use super::items::pascal;
use super::list::{decode_skiptoken, injected_fault, json_ok, next_link};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Map, Value, json};

const EM: [&str; 2] = ["identityGovernance", "entitlementManagement"];

/// Answers the GETs this module emulates; `None` for everything else (assignments, single items).
pub(super) fn respond_get(
    request: &HttpRequest,
    state: &EmulatorState,
    ctx: &Ctx,
    segments: &[&str],
) -> Option<HttpResponse> {
    let options: Vec<(String, String)> = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let option = |name: &str| options.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let unknown = |allowed: &[&str]| {
        options
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
            .map(|(k, _)| k.clone())
    };
    let refuse_unknown = |allowed: &[&str]| {
        unknown(allowed).map(|k| ctx.http_error(400, "BadRequest", &format!("Query option '{k}' is not supported.")))
    };
    let (version, rest) = match segments {
        [v @ ("v1.0" | "beta"), rest @ ..] => (*v, rest),
        _ => return None,
    };
    let denied = || {
        ctx.http_error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    };
    let tenant = || state.tenant.lock().expect("tenant lock");
    match rest {
        ["groups", group, which @ ("members" | "owners")] => {
            if let Some(r) = refuse_unknown(&["$select", "$top", "$skiptoken"]) {
                return Some(r);
            }
            if let Some(r) = injected_fault(state, ctx, "directory") {
                return Some(r);
            }
            let t = tenant();
            if !t.directory.granted_reads.contains(GROUP_MEMBER_READ) {
                return Some(denied());
            }
            let Some(g) = t.directory.groups.get(&group.to_ascii_lowercase()) else {
                return Some(not_found(ctx, group));
            };
            let ids = if *which == "members" { &g.members } else { &g.owners };
            let items = ids
                .iter()
                .map(|id| json!({ "@odata.type": "#microsoft.graph.user", "id": id }))
                .collect();
            Some(paged(state, ctx, request, version, items, option("$top")))
        }
        ["servicePrincipals", sp, "appRoleAssignedTo"] => {
            if let Some(r) = refuse_unknown(&["$select", "$top", "$skiptoken"]) {
                return Some(r);
            }
            let t = tenant();
            if !t.directory.granted_reads.contains(APPLICATION_READ) {
                return Some(denied());
            }
            let sp = sp.to_ascii_lowercase();
            let items = t
                .directory
                .app_role_assignments
                .get(&sp)
                .into_iter()
                .flatten()
                .map(|(principal, role)| {
                    json!({ "id": format!("{principal}-{role}"), "appRoleId": role, "principalId": principal,
                            "principalType": "User", "resourceId": sp })
                })
                .collect();
            Some(paged(state, ctx, request, version, items, option("$top")))
        }
        [a, b, "accessPackages", package] if [*a, *b] == EM => {
            if !*state.app_role_granted.lock().expect("role lock") {
                return Some(denied());
            }
            let t = tenant();
            let Some(roles) = t.directory.package_roles.get(&package.to_ascii_lowercase()) else {
                return Some(not_found(ctx, package));
            };
            let expand = option("$expand").unwrap_or_default();
            let (list, role_key, scope_key) = if version == "beta" {
                (
                    "accessPackageResourceRoleScopes",
                    "accessPackageResourceRole",
                    "accessPackageResourceScope",
                )
            } else {
                ("resourceRoleScopes", "role", "scope")
            };
            let mut body = json!({ "id": package.to_ascii_lowercase(), "displayName":
                t.package_names.get(&package.to_ascii_lowercase()).cloned().unwrap_or_default(), "isHidden": false });
            if expand.starts_with(list) {
                body[list] = Value::Array(
                    roles
                        .iter()
                        .map(|r| render_role_scope(r, role_key, scope_key))
                        .collect(),
                );
            }
            Some(json_ok(ctx, body))
        }
        [a, b, collection] if [*a, *b] == EM && matches!(Kind::of(version, collection), Some(Kind::Request)) => {
            if let Some(r) = refuse_unknown(&["$filter", "$select", "$top", "$skiptoken", "$expand"]) {
                return Some(r);
            }
            if !*state.app_role_granted.lock().expect("role lock") {
                return Some(denied());
            }
            let wanted = match request_filter(version == "beta", &option("$filter").unwrap_or_default()) {
                Ok(w) => w,
                Err(message) => return Some(ctx.http_error(400, "BadRequest", &message)),
            };
            let t = tenant();
            let mut requests: Vec<_> = t
                .requests
                .values()
                .filter(|r| wanted.as_ref().is_none_or(|w| r.state.eq_ignore_ascii_case(w)))
                .collect();
            requests.sort_by(|a, b| a.id.cmp(&b.id));
            let (state_key, date_key) = if version == "beta" {
                ("requestState", "completedDate")
            } else {
                ("state", "completedDateTime")
            };
            let items = requests
                .iter()
                .map(|r| {
                    let state_text = if version == "beta" {
                        pascal(r.state)
                    } else {
                        r.state.to_owned()
                    };
                    let completed = r
                        .completed
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    json!({ "id": r.id, state_key: state_text, date_key: completed })
                })
                .collect();
            Some(paged(state, ctx, request, version, items, option("$top")))
        }
        _ => None,
    }
}

/// `DELETE /{v}/groups/{id}/members/{userId}/$ref`: 204, or 404 when the user is not a member.
pub(super) fn respond_delete(state: &EmulatorState, ctx: &Ctx, segments: &[&str]) -> Option<HttpResponse> {
    let ["v1.0" | "beta", "groups", group, "members", user, "$ref"] = segments else {
        return None;
    };
    let removed = state
        .tenant
        .lock()
        .expect("tenant lock")
        .directory
        .remove_member(group, user);
    Some(if removed {
        ctx.builder(204).finish()
    } else {
        not_found(ctx, user)
    })
}

fn render_role_scope(r: &RoleScope, role_key: &str, scope_key: &str) -> Value {
    let role_id = format!("{}-role", &r.scope_origin_id.chars().take(8).collect::<String>());
    let mut v = Map::new();
    v.insert("id".into(), json!(format!("{role_id}_{}", r.role_origin_id)));
    v.insert(
        role_key.into(),
        json!({ "id": role_id, "displayName": r.role_name,
        "originSystem": r.origin_system, "originId": r.role_origin_id }),
    );
    v.insert(
        scope_key.into(),
        json!({ "id": format!("{role_id}-scope"), "displayName": r.scope_name,
        "originId": r.scope_origin_id, "originSystem": r.origin_system, "isRootScope": true }),
    );
    Value::Object(v)
}

/// `state eq '…'` (v1.0) or `requestState eq '…'` (beta, parentheses allowed as the docs show).
fn request_filter(beta: bool, filter: &str) -> Result<Option<String>, String> {
    let f = filter.trim().trim_start_matches('(').trim_end_matches(')').trim();
    if f.is_empty() {
        return Ok(None);
    }
    let mut parts = f.splitn(3, ' ');
    let (Some(property), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("Invalid filter clause: '{filter}'."));
    };
    let expected = if beta { "requeststate" } else { "state" };
    if property.to_ascii_lowercase() != expected {
        return Err(format!(
            "Could not find a property named '{property}' on type 'microsoft.graph.accessPackageAssignmentRequest', or it does not support filtering."
        ));
    }
    let value = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''));
    match (op.eq_ignore_ascii_case("eq"), value) {
        (true, Some(v)) if !v.contains('\'') => Ok(Some(v.to_owned())),
        _ => Err(format!("Invalid filter clause: '{filter}'.")),
    }
}

fn not_found(ctx: &Ctx, id: &str) -> HttpResponse {
    ctx.http_error(
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// One page of `items` at the request's `$skiptoken`, `$top` (1–999) capped by the emulator's page size.
fn paged(
    state: &EmulatorState,
    ctx: &Ctx,
    request: &HttpRequest,
    version: &str,
    items: Vec<Value>,
    top: Option<String>,
) -> HttpResponse {
    let page_size = match top.as_deref().map(str::parse::<usize>) {
        None => state.page_size(),
        Some(Ok(top)) if (1..=999).contains(&top) => top.min(state.page_size()),
        Some(_) => return ctx.http_error(400, "BadRequest", "Invalid value for $top: it must be from 1 to 999."),
    };
    let options: Vec<(String, String)> = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let offset = match options
        .iter()
        .find(|(k, _)| k == "$skiptoken")
        .map(|(_, v)| decode_skiptoken(v))
    {
        None => 0,
        Some(Some(offset)) => offset,
        Some(None) => return ctx.http_error(400, "BadRequest", "The $skiptoken is invalid or expired."),
    };
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(offset).take(page_size).collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/{version}/$metadata#directoryObjects", state.base_url())),
    );
    body.insert("value".into(), Value::Array(value));
    if offset + page_size < total {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(state, request, offset + page_size)),
        );
    }
    json_ok(ctx, Value::Object(body))
}
