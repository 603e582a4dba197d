//! Text that a policy or a client controls — log messages, printed output,
//! deny reasons, `init` errors, user and connection names — made safe to
//! write into a log line or into the `nats.error` that nats-server logs.
//!
//! One rule for every such string, in every log format: control characters
//! (newlines, NUL, escape sequences, and the Unicode line and bidirectional
//! controls that make a terminal or a viewer show something other than what
//! is written) become visible `\n`, `\u{1b}`-style escapes, and the text is
//! cut to a byte bound on a character boundary, marked with `…`. A policy
//! can then neither start a line of its own in the host's or the server's
//! log nor flood it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The mark left where text was cut.
pub const CUT_MARK: char = '…';

/// `text` with every control character escaped, at most `max_bytes` long
/// (plus the cut mark when it was cut). Borrows when nothing changes.
pub fn printable(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes && is_printable(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max_bytes) + 8);
    for c in text.chars() {
        let before = out.len();
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
        if out.len() > max_bytes {
            out.truncate(before);
            out.push(CUT_MARK);
            break;
        }
    }
    Cow::Owned(out)
}

/// The longest reason (why a request was denied or dropped), as logged and
/// as sent to nats-server (which logs it): the host's words plus what they
/// quote.
pub const REASON_BYTES: usize = 1024;

/// A reason as logged and sent: rendered, escaped and bounded, by one rule
/// for every kind of reason.
pub fn reason_text(reason: &impl std::fmt::Display) -> String {
    printable(&reason.to_string(), REASON_BYTES).into_owned()
}

/// What a reason or a log line shows of one value it quotes (a name, a
/// subject, a key from a message).
pub const QUOTE_BYTES: usize = 64;

/// A value from outside, quoted in a reason: escaped and cut by
/// [`printable`] to [`QUOTE_BYTES`], and shown in double quotes (a quote
/// inside it escaped), so it cannot read as the words around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted(Option<String>);

impl Quoted {
    pub fn new(text: &str) -> Quoted {
        // Backslashes and quotes first, so that neither a quote nor an
        // escape the text carries can read as the end of the quotation.
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        Quoted(Some(printable(&escaped, QUOTE_BYTES).into_owned()))
    }

    /// A value that may be absent, shown as `(none)` (unquoted) when it is.
    pub fn or_none(text: Option<&str>) -> Quoted {
        Quoted(text.and_then(|text| Quoted::new(text).0))
    }
}

impl std::fmt::Display for Quoted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(text) => write!(f, "\"{text}\""),
            None => f.write_str("(none)"),
        }
    }
}

/// Whether `text` has nothing [`printable`] would escape.
pub fn is_printable(text: &str) -> bool {
    !text.chars().any(needs_escape)
}

/// Characters that must not reach a log line as they are.
fn needs_escape(c: char) -> bool {
    c.is_control()
        // Line and paragraph separators: new lines to many viewers.
        || matches!(c, '\u{2028}' | '\u{2029}')
        // Bidirectional embeddings, overrides and isolates: they reorder
        // what a reader sees ("Trojan Source", CVE-2021-42574).
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        // The other invisible format characters: direction marks, zero-width
        // spaces and joiners, the byte-order mark, the soft hyphen. They
        // make two different texts look alike.
        || matches!(
            c,
            '\u{ad}' | '\u{61c}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_plain_text_alone() {
        assert!(matches!(
            printable("alice from café", 64),
            Cow::Borrowed("alice from café")
        ));
    }

    #[test]
    fn escapes_every_control_character() {
        let forged =
            "ok\nINFO authorization decision=\"allow\"\r\u{0}\u{1b}[31m\u{7f}\u{2028}\u{202e}";
        let shown = printable(forged, 1024);
        assert_eq!(
            shown,
            "ok\\nINFO authorization decision=\"allow\"\\r\\u{0}\\u{1b}[31m\\u{7f}\\u{2028}\\u{202e}"
        );
        assert!(!shown.chars().any(needs_escape));
    }

    #[test]
    fn cuts_on_a_character_boundary_and_marks_the_cut() {
        let long = "é".repeat(100);
        assert_eq!(printable(&long, 11), format!("{}{CUT_MARK}", "é".repeat(5)));
        // An escape is never cut in half.
        let shown = printable("abcdefgh\n", 9);
        assert_eq!(shown, format!("abcdefgh{CUT_MARK}"));
        // Bounded however long the input.
        assert!(printable(&"\n".repeat(1 << 20), 512).len() <= 512 + CUT_MARK.len_utf8());
    }

    #[test]
    fn invisible_format_characters_are_escaped() {
        assert_eq!(
            printable("a\u{200f}b\u{feff}c\u{ad}", 64),
            "a\\u{200f}b\\u{feff}c\\u{ad}"
        );
    }

    #[test]
    fn a_quoted_value_cannot_close_its_quotes() {
        // A backslash and a quote: the quote stays escaped.
        assert_eq!(Quoted::new("a\\\"b").to_string(), "\"a\\\\\\\"b\"");
        assert_eq!(Quoted::or_none(None).to_string(), "(none)");
        assert_eq!(Quoted::or_none(Some("")).to_string(), "\"\"");
    }

    #[test]
    fn quotes_escaped_and_bounded() {
        assert_eq!(Quoted::new("APP").to_string(), "\"APP\"");
        assert_eq!(Quoted::new("a\"b\nc").to_string(), "\"a\\\"b\\nc\"");
        let long = Quoted::new(&"x".repeat(1000)).to_string();
        assert_eq!(long, format!("\"{}{CUT_MARK}\"", "x".repeat(QUOTE_BYTES)));
    }
}
