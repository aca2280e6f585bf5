//! A message naming several kinds of work at once (written by hand, or by a caller's script): split into
//! one message per drift package, one expansion per package or user, and the IDs in chunks of 20,
//! without calling Graph, so each part retries, resumes and dead-letters on its own.

use super::{Next, Step, Work, plan};
use crate::domain::{AccessPackageId, Scope, Targets};
use crate::message::Fields;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub targets: Targets,
    pub scopes: Vec<Scope>,
    pub drift_packages: Vec<AccessPackageId>,
}

/// What is left once no single kind matched (the parser refused a message naming nothing).
pub fn parse(fields: Fields) -> Split {
    Split {
        targets: fields.targets,
        scopes: fields.scopes,
        drift_packages: fields.drift_packages,
    }
}

impl Split {
    pub fn write(&self) -> Fields {
        Fields {
            targets: self.targets.clone(),
            scopes: self.scopes.clone(),
            drift_packages: self.drift_packages.clone(),
            ..Fields::default()
        }
    }

    /// Every part as its own message.
    pub fn parts(&self) -> Vec<Work> {
        self.drift_packages
            .iter()
            .map(|p| Work::Drift(*p))
            .chain(plan(&self.targets, &self.scopes))
            .collect()
    }

    pub fn run(self) -> Step {
        let parts = self.parts();
        let mut step = Step::default();
        step.log(format!("split into {} messages", parts.len()));
        step.next = parts.into_iter().map(Next::now).collect();
        step
    }
}
