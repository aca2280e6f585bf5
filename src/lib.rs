//! reprocess-handler: an Azure Functions custom handler that reprocesses Microsoft Entra
//! entitlement-management access package assignments (and assignment requests) through Microsoft Graph
//! with the Function App's managed identity.
//!
//! Data flows one way: host envelope → `functions` → `domain` targets → `reprocess` → `graph` → Graph,
//! and back as a `domain::Report` encoded into the host's reply.

pub mod config;
pub mod domain;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod fanout;
pub mod functions;
pub mod graph;
pub mod host;
pub mod reprocess;
#[cfg(feature = "emulator")]
pub mod sandbox;
pub mod startup;
pub mod telemetry;
