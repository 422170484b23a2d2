//! Text from outside (a Redis error reply, a receiver's body, a server's
//! name for itself) made safe to log or print: one line, no control
//! characters, bounded. Such text must not write log lines of its own, move
//! a terminal's cursor or fill a log; everything the agent logs or prints
//! that it did not write itself goes through here.

use std::fmt;

/// Most characters of outside text shown; the rest is cut with `…`.
pub(crate) const MAX_CHARS: usize = 512;

/// `text` on one line: control characters (newlines included) escaped as
/// Rust writes them (`\n`, `\u{1b}`), cut after [`MAX_CHARS`] characters.
pub(crate) fn one_line(text: &str) -> String {
    OneLine(text).to_string()
}

/// [`one_line`] of what `T` displays, as a `Display` for log macros:
/// escaped as it is written, nothing allocated.
pub(crate) struct OneLine<T>(pub(crate) T);

impl<T: fmt::Display> fmt::Display for OneLine<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut escaper = Escaper { out: f, chars: 0 };
        fmt::write(&mut escaper, format_args!("{}", self.0))
    }
}

/// Writes what it is given escaped, up to [`MAX_CHARS`] characters.
struct Escaper<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    chars: usize,
}

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            if self.chars >= MAX_CHARS {
                if self.chars == MAX_CHARS {
                    self.out.write_str("…")?;
                    self.chars += 1;
                }
                return Ok(());
            }
            self.chars += 1;
            if c.is_control() {
                for e in c.escape_default() {
                    self.out.write_char(e)?;
                }
            } else {
                self.out.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            one_line("bad\nlevel=error msg=forged\u{1b}[31m\u{7}\r"),
            "bad\\nlevel=error msg=forged\\u{1b}[31m\\u{7}\\r"
        );
        assert_eq!(one_line("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn long_text_is_cut() {
        let long = "é".repeat(MAX_CHARS + 10);
        let shown = one_line(&long);
        assert_eq!(shown.chars().count(), MAX_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(one_line(&long[..MAX_CHARS * 2]).chars().count(), MAX_CHARS);
    }

    proptest::proptest! {
        #[test]
        fn the_result_is_one_line_without_control_characters(text in "\\PC*|[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}a-z]*") {
            let shown = one_line(&text);
            proptest::prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
        }
    }
}
