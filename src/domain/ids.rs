//! GUID-only identifiers. Anything a caller sends becomes one of these before it can reach a Graph URL,
//! so a path segment built from them can only ever be 36 characters of `[0-9a-f-]`.

use std::fmt;

/// Why a string is not a GUID, in words a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuidError {
    #[error("must be a GUID like 0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10 (36 characters), got {0} characters")]
    Length(usize),
    #[error("must be a GUID: character {position} is not a hexadecimal digit or a hyphen in the right place")]
    Character { position: usize },
    #[error("must not be the nil GUID 00000000-0000-0000-0000-000000000000")]
    Nil,
}

/// A canonical (lower-case, hyphenated) GUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid([u8; 36]);

impl Guid {
    /// Accepts exactly the 8-4-4-4-12 hyphenated form (any case). Braces, URNs, whitespace,
    /// percent-encoding and non-ASCII look-alikes are all refused.
    pub fn parse(input: &str) -> Result<Self, GuidError> {
        let length = input.chars().count();
        if length != 36 {
            return Err(GuidError::Length(length));
        }
        let mut out = [0u8; 36];
        for (position, c) in input.chars().enumerate() {
            let hyphen_slot = matches!(position, 8 | 13 | 18 | 23);
            out[position] = match (hyphen_slot, c) {
                (true, '-') => b'-',
                (false, '0'..='9' | 'a'..='f') => c as u8,
                (false, 'A'..='F') => c.to_ascii_lowercase() as u8,
                _ => return Err(GuidError::Character { position: position + 1 }),
            };
        }
        if out.iter().all(|&b| b == b'0' || b == b'-') {
            return Err(GuidError::Nil);
        }
        Ok(Self(out))
    }

    /// A random (version 4) GUID, for client-request-id and correlation IDs.
    pub fn new_random() -> Self {
        let mut bytes = fastrand::u128(..).to_be_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        Self::parse(&text).expect("formatted GUID is valid")
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.0).expect("GUID bytes are ASCII")
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Joins the log lines and messages of one logical request across invocations: a caller's own value
/// (at most 64 ASCII letters, digits or hyphens, so it is safe in logs and queue messages) or a fresh GUID.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CorrelationId(String);

impl CorrelationId {
    pub const MAX_LEN: usize = 64;

    /// `None` unless `input` is 1 to 64 ASCII letters, digits or hyphens.
    pub fn parse(input: &str) -> Option<Self> {
        is_log_safe_token(input).then(|| Self(input.to_owned()))
    }
    pub fn new_random() -> Self {
        Self(Guid::new_random().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1 to 64 ASCII letters, digits or hyphens: what IDs from a header or message may look like before they
/// reach a log line (so a forged value cannot inject one).
pub fn is_log_safe_token(input: &str) -> bool {
    !input.is_empty()
        && input.len() <= CorrelationId::MAX_LEN
        && input.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CorrelationId({})", self.0)
    }
}

impl serde::Serialize for CorrelationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

macro_rules! guid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Guid);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, GuidError> {
                Guid::parse(input).map(Self)
            }
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

guid_newtype!(
    /// The `id` of an `accessPackageAssignment`.
    AssignmentId
);
guid_newtype!(
    /// The `id` of an `accessPackageAssignmentRequest`.
    AssignmentRequestId
);
guid_newtype!(
    /// The `id` of an `accessPackage`.
    AccessPackageId
);
guid_newtype!(
    /// The Entra object ID of a user (an assignment's `target.objectId`).
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_case() {
        let id = AssignmentId::parse("0B6C2F8E-4C1A-4A43-9A55-7F0D1F6A2B10").unwrap();
        assert_eq!(id.as_str(), "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10");
    }

    #[test]
    fn refuses_everything_that_is_not_a_plain_guid() {
        let hostile = [
            "",
            "../0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10",
            "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b1/",
            "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2%2F",
            "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b?x",
            "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b#x",
            "{0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10}",
            "0b6c2f8e4c1a4a439a557f0d1f6a2b10",
            " 0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b1",
            "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b1\u{0430}", // Cyrillic a
            "0b6c2f8e\u{2010}4c1a-4a43-9a55-7f0d1f6a2b10", // Unicode hyphen
            "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10\0",
            "00000000-0000-0000-0000-000000000000",
        ];
        for input in hostile {
            assert!(AssignmentId::parse(input).is_err(), "accepted {input:?}");
        }
        assert!(AssignmentId::parse(&"a".repeat(10_000)).is_err());
    }

    #[test]
    fn random_guids_are_valid_v4() {
        let g = Guid::new_random();
        assert_eq!(&g.as_str()[14..15], "4");
        assert_ne!(Guid::new_random(), g);
    }
}

/// The key of one queue message of a tracked operation: 24 lower-case hex digits, derived
/// deterministically (SHA-256) from its parent's key and its place among the parent's outputs, so a
/// redelivered message produces the same keys for the same children (`crate::operations`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey(String);

impl MessageKey {
    pub const LEN: usize = 24;

    pub fn parse(input: &str) -> Option<Self> {
        (input.len() == Self::LEN && input.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| Self(input.to_owned()))
    }
    /// The key of output number `index` of the message (or invocation) named `parent`.
    pub fn derive(parent: &str, index: usize) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{parent}/{index}").as_bytes());
        Self(digest.iter().take(Self::LEN / 2).map(|b| format!("{b:02x}")).collect())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageKey({})", self.0)
    }
}

impl serde::Serialize for MessageKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
