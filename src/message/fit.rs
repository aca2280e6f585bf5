//! Every message the handler writes fits one queue message. Azure Storage takes at most 64 KiB per
//! message, and with host.json's `messageEncoding: base64` the host base64-encodes our text first, so a
//! text may be at most 48 KiB ([`MAX_MESSAGE_TEXT`]). A record that would be larger is never written
//! as is (the output binding would fail and the whole invocation with it):
//! - long texts from Graph or from the caller are clipped, marked `… [truncated from N characters]`;
//! - IDs are split over several records, every ID in exactly one of them, each with its own results;
//! - an original message too large to carry keeps a prefix, its length and its SHA-256 (the record also
//!   names the queue message ID), so the message can still be found and matched.

use sha2::{Digest, Sha256};

/// 64 KiB of base64 is 48 KiB of text.
pub const MAX_MESSAGE_TEXT: usize = 48 * 1024;

/// Room kept free in every split message for the `"messageKey":"<24 hex>",` a tracked operation adds
/// after the split (`crate::operations`).
pub const MESSAGE_KEY_ROOM: usize = 64;

/// `s` cut to at most `max` characters, saying so and how long it was.
pub fn clip(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push_str(&format!("… [truncated from {count} characters]"));
    out
}

/// Texts for `items` split in halves until each text fits (or holds a single item).
pub fn split_to_fit<T>(items: &[T], render: &dyn Fn(&[T]) -> String) -> Vec<String> {
    split_parts(items, &|part| render(part).len() <= MAX_MESSAGE_TEXT - MESSAGE_KEY_ROOM)
        .into_iter()
        .map(render)
        .collect()
}

/// `items` in consecutive parts, halved until each part `fits` (a single item is always a part), in
/// order: every item in exactly one part.
pub fn split_parts<'a, T>(items: &'a [T], fits: &dyn Fn(&[T]) -> bool) -> Vec<&'a [T]> {
    if items.len() <= 1 || fits(items) {
        return vec![items];
    }
    let (left, right) = items.split_at(items.len() / 2);
    let mut parts = split_parts(left, fits);
    parts.extend(split_parts(right, fits));
    parts
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The longest prefix of `text` (at a character boundary) for which `fits` holds, by bisection.
pub fn longest_prefix(text: &str, fits: &dyn Fn(&str) -> bool) -> usize {
    let (mut low, mut high) = (0usize, text.len());
    while low < high {
        let mut mid = (low + high).div_ceil(2);
        while !text.is_char_boundary(mid) {
            mid -= 1;
        }
        if mid > low && fits(&text[..mid]) {
            low = mid;
        } else {
            high = if mid > low { mid - 1 } else { low };
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_marks_truncation() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcdé", 2), "ab… [truncated from 5 characters]");
    }

    #[test]
    fn splits_until_each_text_fits_and_keeps_every_item() {
        let items: Vec<usize> = (0..20_000).collect();
        let render = |part: &[usize]| serde_json::to_string(part).unwrap();
        let texts = split_to_fit(&items, &render);
        assert!(texts.len() > 1);
        let mut back: Vec<usize> = Vec::new();
        for t in &texts {
            assert!(t.len() <= MAX_MESSAGE_TEXT);
            back.extend(serde_json::from_str::<Vec<usize>>(t).unwrap());
        }
        assert_eq!(back, items);
    }

    #[test]
    fn longest_prefix_respects_char_boundaries() {
        let text = "ééééé";
        let n = longest_prefix(text, &|p| p.len() <= 5);
        assert_eq!(&text[..n], "éé");
        assert_eq!(longest_prefix("abc", &|_| true), 3);
        assert_eq!(longest_prefix("abc", &|p| p.is_empty()), 0);
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
