//! What gets reprocessed: an assignment or an assignment request, by GUID, and an ordered set of them
//! without duplicates. Parsing them from JSON is `crate::message`'s job.

use super::ids::{AssignmentId, AssignmentRequestId};
use serde::Serialize;
use std::collections::HashSet;

/// One thing to reprocess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Assignment(AssignmentId),
    AssignmentRequest(AssignmentRequestId),
}

impl Target {
    pub fn id(&self) -> &str {
        match self {
            Target::Assignment(id) => id.as_str(),
            Target::AssignmentRequest(id) => id.as_str(),
        }
    }

    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Assignment(_) => TargetKind::Assignment,
            Target::AssignmentRequest(_) => TargetKind::AssignmentRequest,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetKind {
    Assignment,
    AssignmentRequest,
}

/// Targets in the order first seen, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    items: Vec<Target>,
}

impl Targets {
    pub fn from_items(items: impl IntoIterator<Item = Target>) -> Self {
        let mut seen = HashSet::new();
        let items = items.into_iter().filter(|t| seen.insert(*t)).collect();
        Self { items }
    }
    pub fn items(&self) -> &[Target] {
        &self.items
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn assignment_ids(&self) -> Vec<AssignmentId> {
        self.items
            .iter()
            .filter_map(|t| match t {
                Target::Assignment(id) => Some(*id),
                Target::AssignmentRequest(_) => None,
            })
            .collect()
    }
    pub fn assignment_request_ids(&self) -> Vec<AssignmentRequestId> {
        self.items
            .iter()
            .filter_map(|t| match t {
                Target::AssignmentRequest(id) => Some(*id),
                Target::Assignment(_) => None,
            })
            .collect()
    }
}
