//! Microsoft Graph: the only module that builds Graph URLs or touches a token.

pub mod batch;
pub mod client;
pub mod credential;
pub mod limiter;
pub mod list;
pub mod paths;
pub mod retry;

pub use client::GraphClient;
pub use credential::{CredentialError, TokenProvider};
pub use limiter::Limiter;
