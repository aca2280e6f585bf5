//! reprocess-handler: an Azure Functions custom handler that reprocesses Microsoft Entra
//! entitlement-management access package assignments (and assignment requests) through Microsoft Graph
//! with the Function App's managed identity.
//!
//! An ID travels one way: `startup` (the host's POST) → `functions::<name>` (trigger decoded by `host`)
//! → `message` (body or queue message parsed into `domain` targets) → `reprocess` → `graph` → Graph,
//! and back as `domain` outcomes in a `Report`, encoded by the function into the host's reply
//! (`host::response`). Packages and users go through `fanout` (listing, a page per invocation) and the
//! queue; `dry_run` reads instead of reprocessing. `state` holds what invocations share.

pub mod config;
pub mod domain;
pub mod dry_run;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod fanout;
pub mod functions;
pub mod graph;
pub mod host;
pub mod json;
pub mod message;
pub mod operations;
#[cfg(test)]
mod props;
pub mod reprocess;
#[cfg(feature = "emulator")]
pub mod sandbox;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
