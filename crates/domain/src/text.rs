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

/// Free text of at most `max` characters, normalised.
///
/// # Errors
/// The rule, when longer than `max` characters.
pub fn bounded(raw: &str, max: usize) -> Result<String, String> {
    let text = normalize(raw);
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(text)
}

/// The search key of a name: lowercase, without diacritics (đ → d), words
/// separated by one space. "Nguyễn Văn An" → "nguyen van an".
#[must_use]
pub fn search_key(raw: &str) -> String {
    let stripped: String = raw
        .nfd()
        .filter(|c| !is_combining_mark(*c))
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
