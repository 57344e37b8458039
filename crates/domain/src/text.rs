//! Vietnamese text: NFC normalisation, search keys without diacritics, and
//! phone numbers.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Trims and NFC-normalises `raw`, folding runs of whitespace into one space.
/// Vietnamese can be typed in composed or decomposed forms; stored text is
/// always NFC so that equal names are equal bytes.
#[must_use]
pub fn normalize(raw: &str) -> String {
    raw.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .nfc()
        .collect()
}

/// At most `max` characters of `text`, with `…` and the number of
/// characters left out when it is longer: for echoing a caller's value in
/// an error or a log line without echoing a megabyte.
#[must_use]
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => std::borrow::Cow::Owned(format!(
            "{}… ({} more characters)",
            &text[..cut],
            text[cut..].chars().count()
        )),
    }
}

/// Whether `c` is never stored: a control character other than
/// whitespace (NUL, escape, C1 controls; tabs and line breaks are folded
/// into spaces), or a bidirectional embedding, override or isolate control
/// (U+202A–U+202E, U+2066–U+2069), which makes text display otherwise than
/// it reads.
#[must_use]
pub fn is_forbidden(c: char) -> bool {
    (c.is_control() && !c.is_whitespace())
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that take no width and are dropped from search keys: a
/// name typed with one must still be found by a search without it.
#[must_use]
pub const fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// The rule broken by the first forbidden character of `text`, if any.
fn forbidden_in(text: &str) -> Result<(), String> {
    match text.chars().find(|c| is_forbidden(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "must not contain control or bidirectional-override characters (found U+{:04X})",
            u32::from(c)
        )),
    }
}

/// Free text of at most `max` characters, normalised.
///
/// # Errors
/// The rule, when longer than `max` characters or holding a forbidden
/// character ([`is_forbidden`]).
pub fn bounded(raw: &str, max: usize) -> Result<String, String> {
    forbidden_in(raw)?;
    let text = normalize(raw);
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(text)
}

/// A client's idempotency key: 1 to 128 characters, trimmed, without
/// forbidden characters.
///
/// # Errors
/// The rule it breaks.
pub fn request_id(raw: &str) -> Result<String, String> {
    let id = raw.trim();
    if id.is_empty() || id.chars().count() > 128 {
        return Err("is required: 1 to 128 characters, a UUID is best".into());
    }
    forbidden_in(id)?;
    Ok(id.to_owned())
}

/// The search key of a name: lowercase, without diacritics (đ → d), words
/// separated by one space. "Nguyễn Văn An" → "nguyen van an".
#[must_use]
pub fn search_key(raw: &str) -> String {
    let stripped: String = raw
        .nfd()
        .filter(|c| !is_combining_mark(*c) && !is_zero_width(*c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            other => other,
        })
        .collect();
    stripped
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A Vietnamese phone number as `+84` and the subscriber digits. Accepts
/// `0912 345 678`, `0912.345.678`, `+84 912 345 678`, `84912345678`.
///
/// # Errors
/// The rule, when it is not a Vietnamese number of 9 or 10 digits after the
/// leading 0.
pub fn phone(raw: &str) -> Result<String, String> {
    let rule =
        || "must be a Vietnamese phone number such as 0912 345 678 or +84 912 345 678".to_owned();
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
        .collect();
    let digits = if let Some(rest) = compact.strip_prefix("+84") {
        rest.to_owned()
    } else if let Some(rest) = compact
        .strip_prefix("84")
        .filter(|r| r.len() >= 9 && compact.len() >= 11)
    {
        rest.to_owned()
    } else if let Some(rest) = compact.strip_prefix('0') {
        rest.to_owned()
    } else {
        return Err(rule());
    };
    if !(9..=10).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(rule());
    }
    Ok(format!("+84{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decomposed_input_is_stored_composed() {
        let decomposed = "Nguye\u{0302}\u{0303}n Va\u{0306}n An";
        assert_eq!(normalize(decomposed), "Nguyễn Văn An");
        assert_eq!(normalize("  Trần   Thị\tBé "), "Trần Thị Bé");
    }

    #[test]
    fn search_keys_ignore_case_and_diacritics() {
        assert_eq!(search_key("Nguyễn Văn An"), "nguyen van an");
        assert_eq!(search_key("ĐẶNG Thị Ánh"), "dang thi anh");
        assert_eq!(search_key("nguyen van an"), search_key("NGUYỄN  VĂN AN"));
    }

    #[test]
    fn control_and_bidi_override_characters_are_refused_zero_width_ones_leave_search_keys() {
        for bad in [
            "Bé\u{0}",
            "\u{202E}ếB",
            "a\u{1b}[31mb",
            "x\u{2066}y",
            "\u{9f}",
        ] {
            assert!(
                bounded(bad, 100).unwrap_err().contains("control"),
                "{bad:?}"
            );
            assert!(request_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(bounded("Trần\tThị\nBé", 100).unwrap(), "Trần Thị Bé");
        assert_eq!(search_key("Ng\u{200B}uyễn Bé"), "nguyen be");
        assert_eq!(search_key("\u{FEFF}Nguyễn"), search_key("Nguyễn"));
        assert_eq!(request_id("  r-1 ").unwrap(), "r-1");
        assert!(request_id("").is_err());
        assert!(request_id(&"r".repeat(129)).is_err());
    }

    #[test]
    fn clipped_text_says_how_much_was_left_out() {
        assert_eq!(clip("ngắn", 10), "ngắn");
        assert_eq!(clip("Nguyễn Văn An", 6), "Nguyễn… (7 more characters)");
        assert!(clip(&"x".repeat(100_000), 64).len() < 100);
    }

    #[test]
    fn phones_are_stored_as_plus_84() {
        assert_eq!(phone("0912 345 678").unwrap(), "+84912345678");
        assert_eq!(phone("+84 912.345.678").unwrap(), "+84912345678");
        assert_eq!(phone("84912345678").unwrap(), "+84912345678");
        assert_eq!(phone("0292 3123 456").unwrap(), "+842923123456");
        assert!(phone("12345").is_err());
        assert!(phone("0912 345 67x").is_err());
        assert!(phone("+1 555 0100").is_err());
    }
}
