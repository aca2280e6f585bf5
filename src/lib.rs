//! reprocess-handler: an Azure Functions custom handler that reprocesses Microsoft Entra
//! entitlement-management access package assignments (and assignment requests) through Microsoft Graph
//! with the Function App's managed identity.
//!
//! Data flows one way: `startup` (the host's POST) → `functions::<folder>` (the trigger decoded by
//! `host`) → `work` (one typed kind of work, parsed from `message`) → `graph` → Graph, and back as
//! `domain` outcomes in a `work::Step`, which `work::settle` turns into typed queue messages and dead
//! letters, encoded by the function into the host's reply (`host::response`). `catalog_scope`, `drift`,
//! `heal`, `dry_run` and `fanout` are the domain services the work kinds use; `storage`, `operations`
//! and `audit` keep state and records; `config` parses every setting once. See docs/ARCHITECTURE.md.

pub mod audit;
pub mod catalog_scope;
pub mod config;
pub mod domain;
pub mod drift;
pub mod dry_run;
pub mod fanout;
pub mod functions;
pub mod graph;
pub mod heal;
pub mod host;
pub mod json;
pub mod message;
pub mod operations;
#[cfg(test)]
mod props;
pub mod reprocess;
pub mod setting;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod work;
