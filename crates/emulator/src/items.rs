//! Emulated Graph reads of single items: one assignment, request or access package, as a `GET` of its
//! own or a `$batch` sub-request, with `$expand` as Graph reads it — nested options included
//! (`accessPackage($expand=catalog)`) — and items rendered in each version's property names.

use super::EmulatorState;
use super::answer::Kind;
use super::tenant::{Assignment, Tenant};
use serde_json::{Value, json};

/// Graph's error as (status, code, message).
pub(super) type ReadError = (u16, &'static str, String);

pub(super) fn options(query: &str) -> Result<Vec<(String, String)>, ReadError> {
    let options: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    match options
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "$filter" | "$expand" | "$select" | "$top" | "$skiptoken"))
    {
        Some((unknown, _)) => Err((400, "BadRequest", format!("Query option '{unknown}' is not supported."))),
        None => Ok(options),
    }
}

/// `GET` of one assignment, request or access package, as a request of its own or a `$batch`
/// sub-request (`query` still percent-encoded).
pub(super) fn read_item(
    state: &EmulatorState,
    version: &str,
    collection: &str,
    id: &str,
    query: &str,
) -> Result<Value, ReadError> {
    let options = options(query)?;
    if !*state.app_role_granted.lock().expect("role lock") {
        return Err((
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.".into(),
        ));
    }
    let expand = parse_expand(
        options
            .iter()
            .find(|(k, _)| k == "$expand")
            .map_or("", |(_, v)| v.as_str()),
    );
    let tenant = state.tenant.lock().expect("tenant lock");
    let beta = version == "beta";
    let id = id.to_ascii_lowercase();
    if collection == "accessPackages" {
        let known = tenant.package_names.contains_key(&id) || tenant.package_catalogs.contains_key(&id);
        return if known {
            Ok(render_package(&tenant, &id, beta, &expand))
        } else {
            Err(not_found_error(&id))
        };
    }
    let Some(kind) = Kind::of(version, collection) else {
        return Err((
            400,
            "BadRequest",
            format!("Resource not found for the segment '{collection}'."),
        ));
    };
    match kind {
        Kind::Assignment => match tenant.assignments.get(&id) {
            Some(a) => Ok(render_assignment(&tenant, a, beta, &expand)),
            None => Err(not_found_error(&id)),
        },
        Kind::Request => match tenant.requests.get(&id) {
            Some(r) => {
                let completed = r
                    .completed
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                let (state_key, date_key) = if beta {
                    ("requestState", "completedDate")
                } else {
                    ("state", "completedDateTime")
                };
                let mut v = json!({ "id": r.id, state_key: r.state, date_key: completed });
                if let Some((_, nested)) = expand.iter().find(|(name, _)| name == "accesspackage") {
                    if !r.access_package_id.is_empty() {
                        v["accessPackage"] =
                            render_package(&tenant, &r.access_package_id, beta, &nested_expand(nested));
                    }
                }
                Ok(v)
            }
            None => Err(not_found_error(&id)),
        },
    }
}

fn not_found_error(id: &str) -> ReadError {
    (
        404,
        "ResourceNotFound",
        format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// `$expand` items, lower-cased: `target,accessPackage($expand=catalog)` → `[("target", ""),
/// ("accesspackage", "$expand=catalog")]` (commas inside parentheses belong to the item).
pub(super) fn parse_expand(text: &str) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let text = text.to_ascii_lowercase();
    let mut push = |item: &str| {
        let item = item.trim();
        if item.is_empty() {
            return;
        }
        match item.split_once('(') {
            Some((name, rest)) => items.push((name.trim().to_owned(), rest.trim_end_matches(')').to_owned())),
            None => items.push((item.to_owned(), String::new())),
        }
    };
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&text[start..]);
    items
}

/// The `$expand` inside an item's nested options (`$select=id;$expand=catalog` → `catalog`).
fn nested_expand(options: &str) -> Vec<(String, String)> {
    options
        .split(';')
        .find_map(|o| o.trim().strip_prefix("$expand="))
        .map(parse_expand)
        .unwrap_or_default()
}

/// An access package; `catalog` (v1.0) / `accessPackageCatalog` (beta) when expanded; beta also carries
/// the `catalogId` property.
fn render_package(tenant: &Tenant, id: &str, beta: bool, expand: &[(String, String)]) -> Value {
    let name = tenant.package_names.get(id).cloned().unwrap_or_default();
    let catalog = tenant.package_catalogs.get(id);
    let mut v = json!({ "id": id, "displayName": name, "isHidden": false });
    if beta {
        v["catalogId"] = json!(catalog);
    }
    let key = if beta { "accesspackagecatalog" } else { "catalog" };
    if expand.iter().any(|(name, _)| name == key) {
        let rendered = catalog.map(|c| {
            let name = tenant.catalog_names.get(c).cloned().unwrap_or_default();
            json!({ "id": c, "displayName": name, "catalogType": "userManaged", "state": "published" })
        });
        v[if beta { "accessPackageCatalog" } else { "catalog" }] = json!(rendered);
    }
    v
}

/// Upper-cases the first letter: `deliveryFailed` → `DeliveryFailed`.
pub(super) fn pascal(state: &str) -> String {
    let mut chars = state.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

pub(super) fn render_assignment(tenant: &Tenant, a: &Assignment, beta: bool, expand: &[(String, String)]) -> Value {
    let status = if a.state == "delivered" { "Delivered" } else { "" };
    let mut v = if beta {
        json!({ "id": a.id, "accessPackageId": a.access_package_id, "targetId": a.target_object_id,
                "catalogId": tenant.package_catalogs.get(&a.access_package_id),
                "assignmentState": pascal(a.state), "assignmentStatus": status, "isExtended": false })
    } else {
        json!({ "id": a.id, "state": a.state, "status": status, "expiredDateTime": null })
    };
    if let Some((_, nested)) = expand.iter().find(|(name, _)| name == "accesspackage") {
        v["accessPackage"] = render_package(tenant, &a.access_package_id, beta, &nested_expand(nested));
    }
    if expand.iter().any(|(name, _)| name == "target") {
        let (name, upn) = tenant.users.get(&a.target_object_id).cloned().unwrap_or_default();
        v["target"] = json!({ "id": format!("{}-subject", &a.id[..8]), "objectId": a.target_object_id,
                              "displayName": name, "principalName": upn, "email": upn, "subjectType": "user" });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_expands_are_read() {
        let items = parse_expand("target,accessPackage($expand=catalog),assignment($select=id;$expand=target)");
        assert_eq!(items[0], ("target".into(), String::new()));
        assert_eq!(items[1], ("accesspackage".into(), "$expand=catalog".into()));
        assert_eq!(nested_expand(&items[1].1), [("catalog".to_owned(), String::new())]);
        assert_eq!(nested_expand(&items[2].1), [("target".to_owned(), String::new())]);
    }
}
