//! Microsoft Graph: the only module that builds Graph URLs (`paths`) or touches a token (`credential`).
//! Every request goes through `transport` (one limiter slot, one token, one timeout, one status
//! classification); `client` reprocesses one target, `batch` runs every `$batch` (reprocess, the
//! scope check's reads), `list` reads pages and items; `signals` reads Graph's throttling headers.
//! [`GraphClient::background`] is the same client sending `x-ms-throttle-priority: low`.

pub mod batch;
pub mod client;
pub mod credential;
pub mod directory;
mod health;
pub mod latency;
pub mod limiter;

pub mod list;
pub mod lookup;
pub mod paths;
pub mod retry;
pub mod signals;
mod status;
mod transport;

pub use client::GraphClient;
pub use credential::{CredentialError, TokenProvider};
pub use limiter::Limiter;
pub use signals::Priority;
pub use transport::ClientError;
