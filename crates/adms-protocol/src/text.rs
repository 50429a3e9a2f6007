//! Decoding device text (user names, messages) per device code page (`protocol.md` §7.1).
//!
//! The official rule is GB2312 for Chinese text and UTF-8 otherwise; the handshake `language`
//! tells which applies. Decoding never guesses silently: [`Decoded::lossless`] says whether the
//! bytes were valid in the chosen encoding, so the caller keeps the raw bytes when they were not.

use std::borrow::Cow;

use encoding_rs::Encoding;

/// The code page used to decode a device's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEncoding(&'static Encoding);

/// Decoded text and whether it was decoded without replacement characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub lossless: bool,
}

impl TextEncoding {
    pub const UTF8: TextEncoding = TextEncoding(encoding_rs::UTF_8);

    /// An encoding by WHATWG label (`utf-8`, `gbk`, `gb18030`, `big5`, `windows-1252`,
    /// `windows-1256`, `shift_jis`, `euc-kr`, ...).
    pub fn for_label(label: &str) -> Option<TextEncoding> {
        Encoding::for_label(label.trim().as_bytes()).map(TextEncoding)
    }

    /// The default for a handshake `language` code: GB18030 (a superset of GB2312/GBK) for
    /// Simplified Chinese (83), Big5 for Traditional Chinese (84), UTF-8 otherwise.
    pub fn for_language(language: Option<&str>) -> TextEncoding {
        match language.map(str::trim) {
            Some("83") => TextEncoding(encoding_rs::GB18030),
            Some("84") => TextEncoding(encoding_rs::BIG5),
            _ => TextEncoding::UTF8,
        }
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Decodes `bytes`; invalid sequences become U+FFFD and `lossless` is false.
    pub fn decode(self, bytes: &[u8]) -> Decoded<'_> {
        if let Some(text) = self.0.decode_without_bom_handling_and_without_replacement(bytes) {
            return Decoded { text, lossless: true };
        }
        let (text, _) = self.0.decode_without_bom_handling(bytes);
        Decoded { text, lossless: false }
    }

    /// Encodes text for a command to the device; `None` when a character cannot be represented.
    pub fn encode(self, text: &str) -> Option<Cow<'_, [u8]>> {
        let (bytes, _, had_errors) = self.0.encode(text);
        (!had_errors).then_some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_per_code_page_and_flags_loss() {
        let utf8 = TextEncoding::UTF8.decode("José".as_bytes());
        assert_eq!((utf8.text.as_ref(), utf8.lossless), ("José", true));
        let bad = TextEncoding::UTF8.decode(b"Jos\xe9 \xff\xfe(Bad");
        assert!(!bad.lossless);
        assert!(bad.text.contains('\u{fffd}'));
        let gbk = TextEncoding::for_language(Some("83"));
        let bytes = gbk.encode("张三").unwrap().into_owned();
        assert_eq!(bytes, [0xd5, 0xc5, 0xc8, 0xfd]);
        assert_eq!(gbk.decode(&bytes).text, "张三");
        let latin = TextEncoding::for_label("windows-1252").unwrap();
        assert_eq!(latin.decode(b"Jos\xe9").text, "José");
        assert_eq!(TextEncoding::for_language(Some("69")), TextEncoding::UTF8);
        assert_eq!(TextEncoding::for_label("nonsense"), None);
    }
}

/// Whether `c` can make text display other than it reads, or break it into lines where no byte
/// says so: C0/C1 controls (TAB, CR, LF, NUL, NEL, ...), the Unicode line and paragraph
/// separators (U+2028, U+2029) and the bidirectional formatting characters (U+061C, U+200E,
/// U+200F, U+202A–U+202E, U+2066–U+2069; the "Trojan Source" set). Device-reported text with
/// one of these is kept raw and flagged, and never reaches the roster or a command.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200E}' | '\u{200F}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// True when `text` holds a character [`is_unsafe_char`] refuses.
pub fn has_unsafe_chars(text: &str) -> bool {
    text.chars().any(is_unsafe_char)
}

#[cfg(test)]
mod unsafe_text_tests {
    use super::*;

    #[test]
    fn controls_separators_and_bidi_are_unsafe_and_ordinary_text_is_not() {
        for bad in
            ["a\tb", "a\rb", "a\0b", "a\u{85}b", "a\u{2028}b", "a\u{2029}b", "\u{202E}evil", "x\u{2066}y", "\u{200F}"]
        {
            assert!(has_unsafe_chars(bad), "{bad:?}");
        }
        for good in ["Ana Lima", "José Núñez", "李小龙", "محمد", "O'Brien-Smith", ""] {
            assert!(!has_unsafe_chars(good), "{good:?}");
        }
    }
}
