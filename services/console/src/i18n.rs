//! Vietnamese first, English by a switch.
//!
//! Every label is written in the source in Vietnamese and goes through
//! [`tr`] (or [`trf`] when it carries values); `en.txt` beside this file
//! gives each one's English. The Vietnamese text is the key, as in
//! gettext, so a page reads in the source as it reads on the screen, and a
//! label without an English line shows in Vietnamese rather than as a
//! bare key. A unit test reads the sources and refuses a Vietnamese
//! literal that does not go through `tr`, or one without an English line.
//!
//! The language of a request comes from the `lang` cookie (set by
//! `GET /ngon-ngu?chon=en`, the switch in every page's header); without
//! it, Vietnamese. The router runs each request inside [`scope`], so the
//! handlers and templates read it with [`current`] instead of carrying it
//! through every function.
//!
//! What the services send is shown as they send it (names of units and
//! agencies, their own words after a refusal), except the statistics'
//! indicators, which the reporting service names in both languages.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::OnceLock;

/// The English of every label, in pairs of lines: `vi: …` then `en: …`.
const EN: &str = include_str!("en.txt");

/// The cookie holding the chosen language.
pub const LANG_COOKIE: &str = "lang";

/// A language of the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// Tiếng Việt, the default.
    #[default]
    Vi,
    /// English.
    En,
}

impl Lang {
    /// The language tag (`<html lang>`, the cookie's value).
    #[must_use]
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Vi => "vi",
            Self::En => "en",
        }
    }

    /// The language of a tag; None for any other.
    #[must_use]
    pub fn parse(tag: &str) -> Option<Self> {
        match tag {
            "vi" => Some(Self::Vi),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// The other language, which the switch offers.
    #[must_use]
    pub const fn other(self) -> Self {
        match self {
            Self::Vi => Self::En,
            Self::En => Self::Vi,
        }
    }

    /// The switch's label for choosing this language, in this language.
    #[must_use]
    pub const fn own_name(self) -> &'static str {
        match self {
            Self::Vi => "Tiếng Việt",
            Self::En => "English",
        }
    }
}

/// What the templates need to know of the request they render.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The language of the answer.
    pub lang: Lang,
    /// The request's path and query, where the language switch comes back.
    pub here: String,
}

tokio::task_local! {
    static CONTEXT: Context;
}

/// Runs `f` (a request's handling) with `context`.
pub async fn scope<F: Future>(context: Context, f: F) -> F::Output {
    CONTEXT.scope(context, f).await
}

/// The language of the request being handled; Vietnamese outside one.
#[must_use]
pub fn current() -> Lang {
    CONTEXT.try_with(|c| c.lang).unwrap_or_default()
}

/// The path and query of the request being handled; `/` outside one.
#[must_use]
pub fn here() -> String {
    CONTEXT
        .try_with(|c| c.here.clone())
        .unwrap_or_else(|_| "/".to_owned())
}

fn catalog() -> &'static HashMap<&'static str, &'static str> {
    static CATALOG: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    CATALOG.get_or_init(|| parse(EN).into_iter().collect())
}

/// The pairs of a catalog text: `vi: ` lines each followed by an `en: `
/// line; `#` lines and blank lines between pairs are comments. Leading and
/// trailing spaces of a label are kept by quoting it: `vi: " · "`.
fn parse(text: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut pairs = Vec::new();
    let mut vi = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("vi: ") {
            vi = Some(unquote(v));
        } else if let Some(e) = line.strip_prefix("en: ")
            && let Some(v) = vi.take()
        {
            pairs.push((v, unquote(e)));
        }
    }
    pairs
}

fn unquote(s: &'static str) -> &'static str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// `vi` in the request's language: itself in Vietnamese, its English line
/// in English (itself when it has none).
#[must_use]
pub fn tr(vi: &'static str) -> &'static str {
    in_lang(current(), vi)
}

/// `vi` in `lang`.
#[must_use]
pub fn in_lang(lang: Lang, vi: &'static str) -> &'static str {
    match lang {
        Lang::Vi => vi,
        Lang::En => catalog().get(vi).copied().unwrap_or(vi),
    }
}

/// [`tr`] of a label with values: `{0}`, `{1}`, … in the label (and in its
/// English, in whatever order English needs) are replaced by `args`.
#[must_use]
pub fn trf(vi: &'static str, args: &[&dyn Display]) -> String {
    let mut text = tr(vi).to_owned();
    for (i, arg) in args.iter().enumerate() {
        text = text.replace(&format!("{{{i}}}"), &arg.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source file of the console (`src/**/*.rs`), read at test time
    /// so that a new file is checked too: (path under `src/`, text).
    fn sources() -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .expect("the console's src directory")
                .map(|e| e.expect("a directory entry").path())
                .collect();
            entries.sort();
            for path in entries {
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a source file");
                    out.push((path.display().to_string(), text));
                }
            }
        }
        let mut out = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    /// Labels written in Vietnamese without a diacritic, which the
    /// diacritic rule below cannot tell from code.
    const PLAIN_VIETNAMESE: &[&str] = &["Nam", "Cao"];

    /// A string literal of a source: its line, its text (escapes
    /// undone), and the code just before it.
    struct Literal {
        line: usize,
        text: String,
        before: String,
    }

    /// The string literals of `src` before its tests, comments skipped.
    fn literals(src: &str) -> Vec<Literal> {
        let src = src.split("#[cfg(test)]").next().unwrap_or_default();
        let chars: Vec<char> = src.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        let mut line = 1;
        let mut code = String::new();
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if c == '\n' {
                line += 1;
            }
            if c == '/' && next == Some('/') {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            if c == '\'' {
                // A char literal ('"', '\'') or a lifetime.
                if next == Some('\\') && chars.get(i + 3) == Some(&'\'') {
                    i += 4;
                    continue;
                }
                if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                    continue;
                }
            }
            if c == '"' {
                let mut text = String::new();
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' {
                    if chars[j] == '\\' {
                        j += 1;
                        match chars.get(j) {
                            Some('n') => text.push('\n'),
                            Some(&other) => text.push(other),
                            None => {}
                        }
                    } else {
                        if chars[j] == '\n' {
                            line += 1;
                        }
                        text.push(chars[j]);
                    }
                    j += 1;
                }
                let before: Vec<char> = code.chars().rev().take(12).collect();
                out.push(Literal {
                    line,
                    text,
                    before: before.into_iter().rev().collect(),
                });
                code.push_str("\"\"");
                i = j + 1;
                continue;
            }
            if !c.is_whitespace() {
                code.push(c);
            }
            i += 1;
        }
        out
    }

    fn vietnamese(text: &str) -> bool {
        text.chars().any(|c| ('\u{c0}'..='\u{1ef9}').contains(&c))
            || PLAIN_VIETNAMESE.contains(&text)
    }

    #[test]
    fn given_the_sources_then_every_vietnamese_label_goes_through_tr_and_has_its_english() {
        let mut missing = Vec::new();
        let mut bare = Vec::new();
        let mut labels = 0;
        let sources = sources();
        assert!(
            sources.len() > 15,
            "found only {} source files",
            sources.len()
        );
        for (file, src) in &sources {
            for lit in literals(src) {
                if !vietnamese(&lit.text) || file.ends_with("/i18n.rs") {
                    continue;
                }
                if !(lit.before.ends_with("tr(") || lit.before.ends_with("trf(")) {
                    bare.push(format!("{file}:{} {:?}", lit.line, lit.text));
                    continue;
                }
                labels += 1;
                if !catalog().contains_key(lit.text.as_str()) {
                    missing.push(format!("{file}:{} {:?}", lit.line, lit.text));
                }
            }
        }
        assert!(labels > 300, "the scan found only {labels} labels");
        assert!(
            bare.is_empty(),
            "Vietnamese literals not going through tr():\n{}",
            bare.join("\n")
        );
        assert!(
            missing.is_empty(),
            "labels without an English line in en.txt:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn given_the_catalog_then_each_label_is_there_once_and_its_english_is_english() {
        let pairs = parse(EN);
        let mut seen = std::collections::HashSet::new();
        for (vi, en) in &pairs {
            assert!(seen.insert(*vi), "{vi:?} is in en.txt twice");
            assert!(!en.trim().is_empty(), "{vi:?} has an empty English line");
            assert!(
                !en.chars().any(|c| ('\u{c0}'..='\u{1ef9}').contains(&c))
                    || en.contains("Thông tư")
                    || en.contains("Mẫu")
                    || en.contains("Tiếng Việt"),
                "{vi:?}: its English {en:?} holds Vietnamese"
            );
            for i in 0..4 {
                let hole = format!("{{{i}}}");
                assert_eq!(
                    vi.contains(&hole),
                    en.contains(&hole),
                    "{vi:?} and {en:?} differ in {hole}"
                );
            }
        }
        let sources: Vec<Literal> = sources().iter().flat_map(|(_, s)| literals(s)).collect();
        let unused: Vec<&&str> = pairs
            .iter()
            .map(|(vi, _)| vi)
            .filter(|vi| !sources.iter().any(|l| l.text == **vi))
            .collect();
        assert!(unused.is_empty(), "en.txt lines no page uses: {unused:?}");
    }

    #[test]
    fn given_english_then_a_label_and_its_values_read_in_english() {
        assert_eq!(in_lang(Lang::En, "Đăng xuất"), "Sign out");
        assert_eq!(in_lang(Lang::Vi, "Đăng xuất"), "Đăng xuất");
        assert_eq!(in_lang(Lang::En, "no such label"), "no such label");
        assert_eq!(
            tr("Đăng xuất"),
            "Đăng xuất",
            "outside a request: Vietnamese"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let context = Context {
            lang: Lang::En,
            here: "/ho-so".into(),
        };
        let (label, time, where_) = rt.block_on(scope(context, async {
            (tr("Đăng xuất"), trf("Hồ sơ {0}", &[&"HS-1"]), here())
        }));
        assert_eq!(label, "Sign out");
        assert_eq!(time, "Case HS-1");
        assert_eq!(where_, "/ho-so");
    }
}
