//! reprocess-handler: an Azure Functions custom handler that reprocesses Microsoft Entra
//! entitlement-management access package assignments (and assignment requests) through Microsoft Graph
//! with the Function App's managed identity.
//!
//! An ID travels one way: `startup` (the host's POST) → `functions::<name>` (trigger decoded by `host`)
//! → `message` (body or queue message parsed into `domain` targets) → `reprocess` → `graph` → Graph,
//! and back as `domain` outcomes in a `Report`, encoded by the function into the host's reply
//! (`host::response`). Packages and users go through `fanout` (listing, a page per invocation) and the
//! queue; `dry_run` reads instead of reprocessing. `catalog_scope` confines all of it to the allowed
//! catalogs and packages (one `$batch` of GETs per group of IDs); `audit` records every reprocess and dry
//! run, with who asked, in the log and a Storage table. `state` holds what invocations share.

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
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
