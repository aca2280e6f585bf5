//! The service: run every target through Graph with bounded concurrency before a deadline, and
//! collect a [`Report`] in the order the caller gave the IDs.

use crate::domain::{Report, Targets};
use crate::graph::GraphClient;
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
        let mut results: Vec<_> = futures_util::stream::iter(targets.items().iter().copied().enumerate())
            .map(|(index, target)| {
                let graph = Arc::clone(&self.graph);
                async move { (index, graph.reprocess(target, deadline).await) }
            })
            .buffer_unordered(self.per_invocation_concurrency)
            .collect()
            .await;
        results.sort_by_key(|(index, _)| *index);
        Report::new(results.into_iter().map(|(_, r)| r).collect())
    }
}
