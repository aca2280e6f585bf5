//! The service: run every target through Graph with bounded concurrency before a deadline, and
//! collect a [`Report`] in the order the caller gave the IDs. Targets go to Graph in groups of
//! `GRAPH_BATCH_SIZE` (one `$batch` each); a group of one is a plain reprocess call.

use crate::domain::Target;
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

    pub async fn run(&self, targets: &Targets, deadline: Instant) -> Report {
        let group_size = self.graph.batch_size().max(1);
        let groups: Vec<_> = targets.items().chunks(group_size).map(<[_]>::to_vec).collect();
        let mut results: Vec<_> = futures_util::stream::iter(groups.into_iter().enumerate())
            .map(|(index, group)| {
                let graph = Arc::clone(&self.graph);
                async move {
                    log_urls(&graph, &group);
                    let results = if group.len() == 1 {
                        vec![graph.reprocess(group[0], deadline).await]
                    } else {
                        graph.reprocess_batch(&group, deadline).await
                    };
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
