//! The catalog-scope check's reads: which access package and catalog up to 20 assignments, requests or
//! packages belong to, in **one** `POST /$batch` of GETs (`concepts/json-batching.md`), so checking a
//! chunk of IDs costs one request, not one per ID. Rounds, retries, waits and pacing are the `$batch`
//! runner's ([`batch::run`]), as for the reprocess batches; this module only says what to read (URLs
//! from `paths`) and what a sub-response means.

use super::batch::{self, Method, SubRequest, SubResponse};
use super::client::{Attempt, GraphClient};
use super::paths::{membership_relative, package_relative};
use crate::domain::{AccessPackageId, CatalogId, Guid, Membership, Outcome, Target};
use serde_json::Value;
use tokio::time::Instant;

/// What the check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Target(Target),
    Package(AccessPackageId),
}

/// What Graph said about one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Read (200): where it belongs.
    Found(Membership),
    /// Not read: a final outcome (404 not found, 401/403 denied, another refusal) or transient.
    Failed(Outcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    pub lookup: Lookup,
    pub http_status: Option<u16>,
    pub graph_request_id: Option<String>,
    pub attempts: u32,
}

/// The package and catalog in an assignment, request or package as Graph renders it in either version:
/// v1.0 `accessPackage.catalog`, beta `accessPackage.accessPackageCatalog`, beta's `catalogId` and
/// `accessPackageId` properties; for a package, its own `id`.
pub fn membership_of(subject_is_package: bool, body: &Value) -> Membership {
    let guid = |v: &Value| v.as_str().and_then(|s| Guid::parse(s).ok()).map(|g| g.to_string());
    let package_value = if subject_is_package {
        body
    } else {
        &body["accessPackage"]
    };
    let package = guid(&package_value["id"]).or_else(|| guid(&body["accessPackageId"]));
    let catalog = guid(&package_value["catalog"]["id"])
        .or_else(|| guid(&package_value["accessPackageCatalog"]["id"]))
        .or_else(|| guid(&package_value["catalogId"]))
        .or_else(|| guid(&body["catalogId"]));
    Membership {
        access_package: package.and_then(|p| AccessPackageId::parse(&p).ok()),
        catalog: catalog.and_then(|c| CatalogId::parse(&c).ok()),
    }
}

impl GraphClient {
    /// Reads up to 20 subjects in one `$batch` per round ([`batch::run`]), until each is read, final,
    /// or out of attempts (`GRAPH_MAX_ATTEMPTS`) or time.
    pub async fn lookup_batch(&self, subjects: &[Subject], deadline: Instant) -> Vec<LookupResult> {
        let version = self.api_version();
        let requests: Vec<SubRequest> = subjects
            .iter()
            .map(|s| SubRequest {
                method: Method::Get,
                url: match s {
                    Subject::Target(t) => membership_relative(version, t),
                    Subject::Package(p) => package_relative(version, p),
                },
            })
            .collect();
        let client_request_id = Guid::new_random();
        tracing::info!(method = "POST", reads = subjects.len(), %client_request_id, "Graph request (scope check)");
        let read = |i: usize, sub: &SubResponse| read_lookup(subjects[i], sub);
        batch::run(self, &requests, read, &client_request_id, deadline, "scope check")
            .await
            .into_iter()
            .map(|f| LookupResult {
                lookup: f.result.unwrap_or_else(Lookup::Failed),
                http_status: f.http_status,
                graph_request_id: f.graph_request_id,
                attempts: f.attempts,
            })
            .collect()
    }
}

/// One read's sub-response: where the subject belongs (200), a final failure, or a retry.
pub(super) fn read_lookup(subject: Subject, sub: &SubResponse) -> Attempt<Lookup> {
    if sub.status == 200 {
        return Attempt::Final(Lookup::Found(membership_of(
            matches!(subject, Subject::Package(_)),
            &sub.body,
        )));
    }
    match sub.classify() {
        Attempt::Final(outcome) => Attempt::Final(Lookup::Failed(outcome)),
        Attempt::Retry { reason, wait } => Attempt::Retry { reason, wait },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &str = "9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f";
    const C: &str = "c0c0c0c0-1111-4111-8111-000000000001";

    #[test]
    fn membership_is_read_from_either_version() {
        let v1 = json!({ "id": "x", "accessPackage": { "id": P, "catalog": { "id": C } } });
        let beta = json!({ "id": "x", "accessPackageId": P, "catalogId": C });
        let beta_expanded = json!({ "accessPackage": { "id": P, "accessPackageCatalog": { "id": C } } });
        for body in [v1, beta, beta_expanded] {
            let m = membership_of(false, &body);
            assert_eq!(m.access_package.unwrap().as_str(), P);
            assert_eq!(m.catalog.unwrap().as_str(), C);
        }
        let package = membership_of(true, &json!({ "id": P, "catalog": { "id": C } }));
        assert_eq!(package.access_package.unwrap().as_str(), P);
        assert_eq!(package.catalog.unwrap().as_str(), C);
        assert_eq!(membership_of(false, &json!({ "id": P })), Membership::default());
    }
}
