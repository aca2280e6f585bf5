//! One integration-test binary: spawns the release-shaped binary on port 0 against the emulated tenant
//! and drives it with envelopes as the Functions host sends them.

mod alert;
mod helpers;
mod hostile;
mod http;
mod openapi;
mod pacing;
mod protocol;
mod queue;
mod sandbox;
mod settings;
mod targets;
mod throughput;
