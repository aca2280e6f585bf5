//! What a Table Storage call can fail with; shared by the client and the entity codec.

use super::keys::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The service answered with an error: HTTP status and the Table error code (`EntityAlreadyExists`…).
    #[error("Table service answered {status} {code}: {message}")]
    Service { status: u16, code: String, message: String },
    #[error("Table service unreachable: {0}")]
    Transport(String),
    #[error(transparent)]
    Token(#[from] crate::graph::CredentialError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("unexpected answer from the Table service: {0}")]
    Unexpected(String),
}

impl StorageError {
    pub fn status(&self) -> Option<u16> {
        match self {
            StorageError::Service { status, .. } => Some(*status),
            _ => None,
        }
    }
}
