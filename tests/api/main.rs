//! One integration-test binary: spawns the release-shaped binary on port 0 against the emulated tenant
//! and drives it with envelopes as the Functions host sends them.

mod alert;
mod audit;
mod azurite;
mod callers;
mod drift;
mod drift_seams;
mod hardening;
mod helpers;
mod hostile;
mod http;
mod openapi;
mod openapi_scope;
mod operations;
mod operations_redelivery;
mod pacing;
mod protocol;
mod queue;
mod sandbox;
mod scope;
mod settings;
mod storage;
mod targets;
mod throughput;
