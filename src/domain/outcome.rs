//! What happened to each ID, and the counts callers and logs see.

use super::targets::{Target, TargetKind};
use serde::Serialize;

/// The app role a Function App's identity needs for every reprocess call.
pub const REQUIRED_APP_ROLE: &str = "EntitlementManagement.ReadWrite.All";

/// Graph's `error.code` and `error.message`, kept verbatim for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphError {
    pub code: String,
    pub message: String,
}

/// Final outcomes end the work on an ID; `Transient` means "try again later".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Graph answered 202: the reprocess was queued by Entra.
    Accepted,
    /// Graph answered 404: no such assignment (or request) in this tenant.
    NotFound {
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<GraphError>,
    },
    /// Graph refused the call (400 and other non-retryable 4xx), e.g. the assignment is not Delivered.
    Rejected { error: GraphError },
    /// 401/403: the identity lacks the Graph app role (or its token was refused).
    PermissionDenied {
        error: GraphError,
        #[serde(rename = "missingAppRole")]
        missing_app_role: &'static str,
    },
    /// Outside the catalogs/packages this deployment may touch (`ALLOWED_CATALOG_IDS`,
    /// `ALLOWED_ACCESS_PACKAGE_IDS`): nothing was sent to reprocess. Names where Graph says it belongs.
    OutOfScope {
        #[serde(rename = "accessPackageId", skip_serializing_if = "Option::is_none")]
        access_package_id: Option<String>,
        #[serde(rename = "catalogId", skip_serializing_if = "Option::is_none")]
        catalog_id: Option<String>,
    },
    /// 429, 5xx, timeouts, connection failures or a token endpoint failure, after in-invocation retries.
    Transient {
        reason: String,
        #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u64>,
    },
}

impl Outcome {
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Transient { .. })
    }
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::NotFound { .. } => "not_found",
            Outcome::Rejected { .. } => "rejected",
            Outcome::PermissionDenied { .. } => "permission_denied",
            Outcome::OutOfScope { .. } => "out_of_scope",
            Outcome::Transient { .. } => "transient",
        }
    }
}

/// One ID's result as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub kind: TargetKind,
    pub id: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The last HTTP status Graph answered with, if it answered at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_request_id: Option<String>,
    pub attempts: u32,
    #[serde(skip)]
    pub target: Option<Target>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub total: usize,
    pub accepted: usize,
    pub not_found: usize,
    pub rejected: usize,
    pub permission_denied: usize,
    pub out_of_scope: usize,
    pub transient: usize,
}

/// Every ID's result plus counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub results: Vec<ItemResult>,
}

impl Report {
    pub fn new(results: Vec<ItemResult>) -> Self {
        let mut summary = Summary {
            total: results.len(),
            ..Default::default()
        };
        for r in &results {
            match r.outcome {
                Outcome::Accepted => summary.accepted += 1,
                Outcome::NotFound { .. } => summary.not_found += 1,
                Outcome::Rejected { .. } => summary.rejected += 1,
                Outcome::PermissionDenied { .. } => summary.permission_denied += 1,
                Outcome::OutOfScope { .. } => summary.out_of_scope += 1,
                Outcome::Transient { .. } => summary.transient += 1,
            }
        }
        Self { summary, results }
    }

    pub fn all_final(&self) -> bool {
        self.summary.transient == 0
    }

    /// The targets that stayed transient, to hand back for a later attempt.
    pub fn transient_targets(&self) -> Vec<Target> {
        self.results
            .iter()
            .filter(|r| !r.outcome.is_final())
            .filter_map(|r| r.target)
            .collect()
    }

    /// The largest Retry-After Graph asked for among transient results.
    pub fn max_retry_after(&self) -> Option<u64> {
        self.results
            .iter()
            .filter_map(|r| match r.outcome {
                Outcome::Transient {
                    retry_after_seconds, ..
                } => retry_after_seconds,
                _ => None,
            })
            .max()
    }

    /// One line for the host's invocation log.
    pub fn one_line(&self) -> String {
        let s = &self.summary;
        format!(
            "reprocess: {} IDs, {} accepted, {} not found, {} rejected, {} permission denied, {} out of scope, {} transient",
            s.total, s.accepted, s.not_found, s.rejected, s.permission_denied, s.out_of_scope, s.transient
        )
    }
}
