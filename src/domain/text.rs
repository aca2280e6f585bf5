//! Caller text made fit for a log line or an audit record. Control characters could forge or split a
//! line; Unicode *format* characters (general category Cf) are invisible but change how the text shows:
//! `evil`, a right-to-left override (U+202E), then `txt.exe` reads as `evilexe.txt`; zero-width
//! characters make two different names look the same; tag characters hide text altogether. Neither
//! kind says anything a reader of the record needs, so both are dropped.

/// Unicode general category Cf (format characters), as of Unicode 16.0, every range listed (the whole
/// tag block U+E0000–U+E007F, its unassigned code points too), plus the line and paragraph separators
/// U+2028/U+2029 (categories Zl/Zp), which end a line in some log viewers.
pub fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// A character that is kept in caller text: neither a control nor a format character.
pub fn is_shown(c: char) -> bool {
    !c.is_control() && !is_format(c)
}

/// At most `max` of `text`'s shown characters ([`is_shown`]), in order.
pub fn shown(text: &str, max: usize) -> String {
    text.chars().filter(|&c| is_shown(c)).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_range_is_caught_at_both_ends_and_its_neighbours_are_not() {
        let ranges = [
            (0x00AD, 0x00AD),
            (0x0600, 0x0605),
            (0x061C, 0x061C),
            (0x06DD, 0x06DD),
            (0x070F, 0x070F),
            (0x0890, 0x0891),
            (0x08E2, 0x08E2),
            (0x180E, 0x180E),
            (0x200B, 0x200F),
            (0x202A, 0x202E),
            (0x2060, 0x2064),
            (0x2066, 0x206F),
            (0xFEFF, 0xFEFF),
            (0xFFF9, 0xFFFB),
            (0x110BD, 0x110BD),
            (0x110CD, 0x110CD),
            (0x13430, 0x1343F),
            (0x1BCA0, 0x1BCA3),
            (0x1D173, 0x1D17A),
            (0xE0001, 0xE0001),
            (0xE0020, 0xE007F),
        ];
        for (first, last) in ranges {
            for code in [first, (first + last) / 2, last] {
                let c = char::from_u32(code).unwrap();
                assert!(is_format(c), "U+{code:04X} is Cf");
                assert!(!is_shown(c));
            }
        }
        // Neighbours that are letters, marks, digits or spaces stay.
        for code in [
            0x00AC, 0x00AE, 0x0606, 0x061B, 0x061D, 0x06DC, 0x06DE, 0x070E, 0x0710, 0x088F, 0x0892, 0x08E1, 0x08E3,
            0x180D, 0x180F, 0x200A, 0x2027, 0x202F, 0x205F, 0x2065, 0x2070, 0xFEFE, 0xFF00, 0xFFF8, 0xFFFC, 0x110BC,
            0x110BE, 0x1342F, 0x13440, 0x1BC9F, 0x1BCA4, 0x1D172, 0x1D17B, 0xE0080,
        ] {
            let c = char::from_u32(code).unwrap();
            assert!(!is_format(c), "U+{code:04X} is not Cf");
        }
        for c in [
            'a', 'é', 'ж', 'ß', '中', '😀', ' ', '-', '\u{0301}', '\u{FE0F}', '\u{00A0}',
        ] {
            assert!(is_shown(c), "{c:?}");
        }
    }

    #[test]
    fn shown_drops_controls_and_format_characters_and_clips() {
        let hostile = "evil\u{202E}txt.exe\u{200B}\r\n\u{2066}x\u{2069}\u{FEFF}\u{E0041}\u{00AD}\u{061C}\u{180E}";
        assert_eq!(shown(hostile, 100), "eviltxt.exex");
        assert_eq!(shown("ab\u{202E}cd", 3), "abc");
    }
}
