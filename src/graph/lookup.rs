//! The catalog-scope check's reads: which access package and catalog up to 20 assignments, requests or
//! packages belong to, in **one** `POST /$batch` of GETs (`concepts/json-batching.md`), so checking a
//! chunk of IDs costs one request, not one per ID. Sub-requests throttled or failing transiently are
//! read again in the next round (after the longest `Retry-After`), like the reprocess batches; a batch
//! answer that is itself 429/5xx is retried as a whole. URLs come from `paths`.

use super::batch::BatchResponse;
use super::client::{Attempt, GraphClient, classify, refused_before_sending, transient};
use super::paths::{batch_url, membership_relative, package_relative};
use super::retry::parse_retry_after;
use super::transport::{Call, GraphRequest, SendError};
use crate::domain::{AccessPackageId, CatalogId, Guid, Membership, Outcome, Target};
use serde_json::{Value, json};
use std::time::Duration;
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
    /// Reads up to 20 subjects in one `$batch` per round, until each is read, final, or out of
    /// attempts (`GRAPH_MAX_ATTEMPTS`) or time.
    pub async fn lookup_batch(&self, subjects: &[Subject], deadline: Instant) -> Vec<LookupResult> {
        let mut results: Vec<LookupResult> = subjects
            .iter()
            .map(|_| LookupResult {
                lookup: Lookup::Failed(transient("not read yet", None)),
                http_status: None,
                graph_request_id: None,
                attempts: 0,
            })
            .collect();
        let client_request_id = Guid::new_random();
        let mut pending: Vec<usize> = (0..subjects.len()).collect();
        let mut round = 0u32;
        while !pending.is_empty() {
            round += 1;
            let batch: Vec<Subject> = pending.iter().map(|&i| subjects[i]).collect();
            let answer = self.send_lookups(&batch, &client_request_id, deadline).await;
            if !matches!(answer, Err(SendError::OutOfTime { .. })) {
                for &i in &pending {
                    results[i].attempts += 1;
                }
            }
            let mut retry: Vec<(usize, String, Option<Duration>)> = Vec::new();
            match answer {
                Err(SendError::OutOfTime { gate_wait }) => {
                    let reason = SendError::OutOfTime { gate_wait }.to_string();
                    for &i in &pending {
                        results[i].lookup = Lookup::Failed(transient(&reason, gate_wait));
                    }
                    break;
                }
                Err(SendError::Transient(reason)) => retry.extend(pending.iter().map(|&i| (i, reason.clone(), None))),
                Err(other) => {
                    let outcome = refused_before_sending(other);
                    for &i in &pending {
                        results[i].lookup = Lookup::Failed(outcome.clone());
                    }
                    break;
                }
                Ok(Err((status, attempt))) => match attempt {
                    Attempt::Final(outcome) => {
                        for &i in &pending {
                            results[i].http_status = Some(status);
                            results[i].lookup = Lookup::Failed(outcome.clone());
                        }
                        break;
                    }
                    Attempt::Retry { reason, wait } => retry.extend(pending.iter().map(|&i| (i, reason.clone(), wait))),
                },
                Ok(Ok(parts)) => {
                    for (&i, part) in pending.iter().zip(parts) {
                        let (attempt, status, request_id) = part;
                        results[i].http_status = Some(status);
                        results[i].graph_request_id = request_id;
                        match attempt {
                            Ok(lookup) => results[i].lookup = lookup,
                            Err((reason, wait)) => retry.push((i, reason, wait)),
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            let wait = retry
                .iter()
                .filter_map(|(_, _, w)| *w)
                .max()
                .unwrap_or_else(|| self.transport().retry_backoff(round));
            let out_of_time = Instant::now() + wait >= deadline;
            pending.clear();
            for (i, reason, _) in retry {
                if out_of_time || results[i].attempts >= self.transport().max_attempts() {
                    results[i].lookup = Lookup::Failed(transient(&reason, Some(wait)));
                } else {
                    pending.push(i);
                }
            }
            if !pending.is_empty() {
                tracing::warn!(
                    retrying = pending.len(),
                    round,
                    wait_ms = wait.as_millis() as u64,
                    "scope check: transient Graph failures"
                );
                tokio::time::sleep(wait).await;
            }
        }
        results
    }

    /// One `$batch` of GETs. `Ok(Err)` when the batch as a whole was answered with a failure.
    #[allow(clippy::type_complexity)]
    async fn send_lookups(
        &self,
        subjects: &[Subject],
        client_request_id: &Guid,
        deadline: Instant,
    ) -> Result<Result<Vec<(Result<Lookup, (String, Option<Duration>)>, u16, Option<String>)>, (u16, Attempt)>, SendError>
    {
        let version = self.api_version();
        let requests: Vec<Value> = subjects
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let url = match s {
                    Subject::Target(t) => membership_relative(version, t),
                    Subject::Package(p) => package_relative(version, p),
                };
                json!({ "id": (i + 1).to_string(), "method": "GET", "url": url })
            })
            .collect();
        let body = json!({ "requests": requests }).to_string();
        let url = batch_url(self.base_url(), version);
        tracing::info!(method = "POST", url = %url, reads = subjects.len(), "Graph request (scope check)");
        let request = GraphRequest {
            call: Call::Batch {
                body: &body,
                weight: subjects.len() as u32,
            },
            url: &url,
            client_request_id,
        };
        let answer = self.transport().send_once(&request, deadline).await?;
        if answer.status != 200 {
            return Ok(Err((
                answer.status,
                classify(answer.status, answer.retry_after, &answer.body),
            )));
        }
        let Ok(parsed) = serde_json::from_slice::<BatchResponse>(&answer.body) else {
            let reason = "Graph's batch answer was not the documented JSON".to_owned();
            return Ok(Err((answer.status, Attempt::Retry { reason, wait: None })));
        };
        let parts = subjects
            .iter()
            .enumerate()
            .map(|(i, subject)| {
                let position = (i + 1).to_string();
                let Some(sub) = parsed.responses.iter().find(|r| r.id.trim() == position) else {
                    let reason = "Graph's batch answer had no response for this read".to_owned();
                    return (Err((reason, None)), 0, answer.request_id.clone());
                };
                self.transport().record_answer(sub.status);
                let request_id = sub.request_id().or_else(|| answer.request_id.clone());
                if sub.status == 200 {
                    let membership = membership_of(matches!(subject, Subject::Package(_)), &sub.body);
                    return (Ok(Lookup::Found(membership)), 200, request_id);
                }
                let wait = sub.header("retry-after").as_deref().and_then(parse_retry_after);
                let attempt = match classify(sub.status, wait, &sub.body_bytes()) {
                    Attempt::Final(outcome) => Ok(Lookup::Failed(outcome)),
                    Attempt::Retry { reason, wait } => Err((reason, wait)),
                };
                (attempt, sub.status, request_id)
            })
            .collect();
        Ok(Ok(parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
