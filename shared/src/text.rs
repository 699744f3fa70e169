//! Text that people type and others see: account names, emails, file names. One classification
//! of the characters that show as nothing or change how the text around them shows, used by
//! every check and clean-up of such text, and the one normal form names and emails are kept in.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` shows as nothing, or changes how the text around it shows: controls (Cc: NUL,
/// tabs and newlines among them), format characters (Cf: zero-width spaces and joiners, the
/// word joiner, the byte-order mark, the soft hyphen, bidirectional embeddings, overrides and
/// isolates), line and paragraph separators, private-use and unassigned code points, and the
/// Hangul fillers (letters by category that display as blank).
pub fn is_invisible(c: char) -> bool {
    use GeneralCategory as G;
    matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::PrivateUse
            | G::Unassigned
            | G::Surrogate
    ) || matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}')
}

/// `raw` in the form names are compared and kept in: NFKC, so full-width and other
/// compatibility forms are the plain characters they stand for (`ａｄａ` is `ada`), without
/// surrounding white space. Look-alikes from other scripts (Cyrillic `а` for Latin `a`) are
/// different characters and stay so.
pub fn normalize(raw: &str) -> String {
    raw.nfkc().collect::<String>().trim().to_owned()
}

/// An email as accounts are keyed by it: [`normalize`]d and lower-cased.
pub fn normalize_email(raw: &str) -> String {
    normalize(raw).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_direction_changing_characters_are_told_apart() {
        for c in [
            '\0', '\n', '\u{7f}', '\u{ad}', '\u{200b}', '\u{200d}', '\u{200e}', '\u{202e}',
            '\u{2028}', '\u{2060}', '\u{2066}', '\u{feff}', '\u{e000}', '\u{3164}', '\u{fff9}',
        ] {
            assert!(is_invisible(c), "{:?}", c);
        }
        for c in ['a', 'é', 'а', ' ', '-', '漢', '😀', '\u{301}'] {
            assert!(!is_invisible(c), "{:?}", c);
        }
    }

    #[test]
    fn compatibility_forms_fold_and_other_scripts_stay() {
        assert_eq!(normalize("  \u{ff21}\u{ff44}\u{ff41} \u{2168} "), "Ada IX");
        assert_eq!(
            normalize_email("\u{ff21}DA@\u{ff58}.com"),
            "ada@x.com",
            "full width"
        );
        assert_eq!(normalize("e\u{301}"), "é", "composed");
        assert_ne!(
            normalize_email("\u{430}da@x.com"),
            "ada@x.com",
            "Cyrillic а"
        );
    }
}
