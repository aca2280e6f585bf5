//! GUIDs as the emulated services mint and check them. Kept here rather than borrowed from the
//! handler: a fake service should behave like the real one, not like the code it is testing.

/// A random (version 4) GUID in canonical form, as Graph and the host generate request and invocation IDs.
pub fn random() -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether Graph takes `id` as an object identifier: the hyphenated 8-4-4-4-12 form (any case), not
/// the nil GUID.
pub fn is_guid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
        && id.bytes().any(|b| b != b'0' && b != b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_guids_are_version_4_and_valid() {
        let id = random();
        assert!(is_guid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(random(), id);
    }

    #[test]
    fn only_the_hyphenated_form_is_a_guid() {
        assert!(is_guid("0B6C2F8E-4c1a-4a43-9a55-7f0d1f6a2b10"));
        assert!(!is_guid("00000000-0000-0000-0000-000000000000"));
        assert!(!is_guid("{0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10}"));
        assert!(!is_guid("0b6c2f8e4c1a-4a43-9a55-7f0d1f6a2b10-"));
        assert!(!is_guid("0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b1g"));
        assert!(!is_guid("not-a-guid"));
    }
}
