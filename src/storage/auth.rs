//! Shared Key Lite for the Table service ("Authorize with Shared Key", Table service section):
//! `StringToSign = x-ms-date + "\n" + CanonicalizedResource`, where CanonicalizedResource is
//! `/<account><encoded URI path>` (plus `?comp=…`, which this client never sends). For a path-style
//! endpoint (Azurite's `http://127.0.0.1:10002/devstoreaccount1`) the path already starts with the account,
//! so the account appears twice, as Azurite's `TableSharedKeyLiteAuthenticator` expects. The signature is
//! base64(HMAC-SHA256(base64-decoded key, UTF-8 string to sign)).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use std::fmt;

/// A storage account key; its `Debug` never shows it.
#[derive(Clone)]
pub struct AccountKey(Vec<u8>);

impl AccountKey {
    /// The base64 text a connection string's `AccountKey` holds.
    pub fn parse(base64_text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(base64_text.trim())
            .map_err(|_| "AccountKey is not base64".to_owned())?;
        if bytes.is_empty() {
            return Err("AccountKey is empty".to_owned());
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// HMAC-SHA256 (RFC 2104), block size 64.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The `Authorization` header value for a Table request (`encoded_path` as sent, account included for
/// a path-style endpoint).
pub fn shared_key_lite(account: &str, key: &AccountKey, x_ms_date: &str, encoded_path: &str) -> String {
    let string_to_sign = format!("{x_ms_date}\n/{account}{encoded_path}");
    let signature = STANDARD.encode(hmac_sha256(&key.0, string_to_sign.as_bytes()));
    format!("SharedKeyLite {account}:{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1 and test case 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn keys_are_base64_and_never_shown() {
        assert!(AccountKey::parse("not base64!").is_err());
        let key = AccountKey::parse("c2VjcmV0").unwrap();
        assert_eq!(format!("{key:?}"), "AccountKey(<redacted>)");
        let header = shared_key_lite("acct", &key, "Wed, 02 Dec 2026 05:00:00 GMT", "/acct/Tables");
        assert!(header.starts_with("SharedKeyLite acct:"), "{header}");
    }
}
