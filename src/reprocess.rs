//! The service: run every target through Graph with bounded concurrency before a deadline, and
//! collect a [`Report`] in the order the caller gave the IDs. Targets go to Graph in groups of
//! `GRAPH_BATCH_SIZE` (one `$batch` each); a group of one is a plain reprocess call.
//!
//! With a catalog scope (`ALLOWED_CATALOG_IDS` / `ALLOWED_ACCESS_PACKAGE_IDS`) each group is first read
//! in one `$batch` of GETs (`graph::lookup`): IDs outside the scope end `out_of_scope`, IDs Graph could
//! not place end with what Graph said (not found, denied, transient), and only the rest are reprocessed.

use crate::catalog_scope::check_targets;
use crate::domain::{AllowedScope, ItemResult, Target};
use crate::domain::{Report, Targets};
use crate::graph::GraphClient;
use crate::graph::paths::{batch_url, reprocess_relative, reprocess_url};
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Reprocessor {
    graph: Arc<GraphClient>,
    per_invocation_concurrency: usize,
}

impl Reprocessor {
    pub fn new(graph: Arc<GraphClient>, per_invocation_concurrency: usize) -> Self {
        Self {
            graph,
            per_invocation_concurrency: per_invocation_concurrency.max(1),
        }
    }

    /// `allowed` is the call's scope (the deployment's, narrowed by the caller's), not a fixed one.
    pub async fn run(&self, targets: &Targets, allowed: Option<&AllowedScope>, deadline: Instant) -> Report {
        let group_size = self.graph.batch_size().max(1);
        let groups: Vec<_> = targets.items().chunks(group_size).map(<[_]>::to_vec).collect();
        let mut results: Vec<_> = futures_util::stream::iter(groups.into_iter().enumerate())
            .map(|(index, group)| {
                let graph = Arc::clone(&self.graph);
                async move {
                    let (send, mut refused) = match allowed {
                        Some(allowed) => check_targets(&graph, allowed, &group, deadline).await,
                        None => (group.clone(), Vec::new()),
                    };
                    let mut results = match send.len() {
                        0 => Vec::new(),
                        1 => {
                            log_urls(&graph, &send);
                            vec![graph.reprocess(send[0], deadline).await]
                        }
                        _ => {
                            log_urls(&graph, &send);
                            graph.reprocess_batch(&send, deadline).await
                        }
                    };
                    // Back in the caller's order.
                    results.append(&mut refused);
                    let position = |r: &ItemResult| group.iter().position(|t| Some(*t) == r.target);
                    results.sort_by_key(position);
                    (index, results)
                }
            })
            .buffer_unordered(self.per_invocation_concurrency)
            .collect()
            .await;
        results.sort_by_key(|(index, _)| *index);
        Report::new(results.into_iter().flat_map(|(_, r)| r).collect())
    }
}

/// Every Graph URL the handler sends to is logged in full (reprocess URLs carry no query and no secret),
/// so what a message made the handler do can always be read back from the logs.
fn log_urls(graph: &GraphClient, group: &[Target]) {
    let (base, version) = (graph.base_url(), graph.api_version());
    if let [target] = group {
        tracing::info!(method = "POST", url = %reprocess_url(base, version, target), "Graph request");
    } else {
        let sub_requests: Vec<String> = group.iter().map(|t| reprocess_relative(version, t)).collect();
        tracing::info!(
            method = "POST",
            url = %batch_url(base, version),
            sub_requests = ?sub_requests,
            "Graph request"
        );
    }
}
