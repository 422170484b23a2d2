//! A config line quoted in an error, its secrets cut out.
//!
//! A parse error points at a line, and that line may hold a credential: a
//! Redis URL's password, a token in a URL's query, the value of a key named
//! for a password or a token, a header value. [`line`] gives the line with
//! each of them replaced by `<redacted>`, and the values it took out, so
//! that the error's own message (a type error quotes the value) is cut the
//! same way. When in doubt it redacts: an error that hides a harmless value
//! is better than one that prints a password.

use crate::secret::{REDACTED, redact_urls};

/// Words that mark a key (or a table) as holding a secret.
const SECRET_WORDS: [&str; 3] = ["password", "token", "secret"];

/// A line as it may be shown.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Quoted {
    pub(super) line: String,
    /// What was taken out, longest first (to cut from the message).
    pub(super) secrets: Vec<String>,
}

impl Quoted {
    /// `message` with every secret of the line replaced.
    pub(super) fn cut(&self, message: &str) -> String {
        self.secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(message.to_owned(), |m, s| m.replace(s.as_str(), REDACTED))
    }
}

/// Line `number` (from 1) of `text`, redacted.
pub(super) fn line(text: &str, number: usize) -> Quoted {
    let mut table = "";
    let mut line = "";
    for (i, l) in text.lines().enumerate() {
        if i + 1 == number {
            line = l;
            break;
        }
        let t = l.trim_start();
        if t.starts_with('[') {
            table = t;
        }
    }
    let mut quoted = redact_line(line, secret_table(table));
    quoted.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    quoted
}

/// Whether the table opened by `header` (`[a.b]`, `[[a]]`) holds secrets as
/// values: headers, or a table named for a secret.
fn secret_table(header: &str) -> bool {
    let name = header
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or("");
    name.split('.').any(secret_segment)
}

/// A key segment whose value is secret: `headers` (every header value may
/// be a credential) or a name holding a secret word.
fn secret_segment(segment: &str) -> bool {
    let s = segment
        .trim()
        .trim_matches(['"', '\''])
        .to_ascii_lowercase();
    s == "headers" || SECRET_WORDS.iter().any(|w| s.contains(w))
}

fn redact_line(line: &str, in_secret_table: bool) -> Quoted {
    let lower = line.to_ascii_lowercase();
    match line.find('=') {
        Some(eq) if in_secret_table || line[..eq].split('.').any(secret_segment) => {
            let value = &line[eq + 1..];
            Quoted {
                line: format!("{} {REDACTED}", &line[..=eq]),
                secrets: value_parts(value),
            }
        }
        None if in_secret_table || SECRET_WORDS.iter().any(|w| lower.contains(w)) => {
            let indent = &line[..line.len() - line.trim_start().len()];
            let mut secrets = value_parts(line);
            secrets.extend(line.split_whitespace().skip(1).map(str::to_owned));
            Quoted {
                line: format!("{indent}{REDACTED}"),
                secrets,
            }
        }
        _ => {
            let (line, secrets) = redact_urls(line);
            Quoted { line, secrets }
        }
    }
}

/// A value as written and each quoted string in it.
fn value_parts(value: &str) -> Vec<String> {
    let mut parts = vec![value.trim().to_owned()];
    for quote in ['"', '\''] {
        parts.extend(value.split(quote).skip(1).step_by(2).map(str::to_owned));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str, number: usize) -> String {
        line(text, number).line
    }

    #[test]
    fn url_credentials_are_cut_and_the_rest_kept() {
        let q = line(r#"url = "redis://:PW@host:6379" x"#, 1);
        assert_eq!(q.line, r#"url = "redis://<redacted>@host:6379" x"#);
        assert_eq!(q.cut("quoted :PW here"), "quoted <redacted> here");
        assert_eq!(
            shown(r#"url = "https://h/api/v1/write?token=T1" 5"#, 1),
            r#"url = "https://h/api/v1/write?token=<redacted>" 5"#
        );
    }

    #[test]
    fn keys_named_for_secrets_lose_their_whole_value() {
        assert_eq!(
            shown(r#"password = "hunter2" x"#, 1),
            "password = <redacted>"
        );
        assert_eq!(shown("  api_token = 12345", 1), "  api_token = <redacted>");
        assert_eq!(
            shown(r#"basic_auth.password_file = 3"#, 1),
            "basic_auth.password_file = <redacted>"
        );
        let q = line(r#"password = 12345"#, 1);
        assert_eq!(
            q.cut("invalid type: integer `12345`"),
            "invalid type: integer `<redacted>`"
        );
        assert_eq!(shown(r#"password "hunter2""#, 1), "<redacted>");
    }

    #[test]
    fn header_values_are_cut_in_tables_and_inline() {
        let text = "[remote_write]\nurl = \"http://h\"\n[remote_write.headers]\nAuthorization = \"Bearer T\" x\n";
        assert_eq!(shown(text, 2), "url = \"http://h\"");
        assert_eq!(shown(text, 4), "Authorization = <redacted>");
        let inline = r#"headers = { "X-Scope-OrgID" = "t1", Authorization = "Bearer T" } x"#;
        let q = line(inline, 1);
        assert_eq!(q.line, "headers = <redacted>");
        assert_eq!(q.cut("found `Bearer T`"), "found `<redacted>`");
    }

    #[test]
    fn lines_without_secrets_are_shown_as_written() {
        let text = "[metrics]\ndetail_interval = \"5m\" x\n";
        assert_eq!(shown(text, 2), "detail_interval = \"5m\" x");
        assert!(line(text, 2).secrets.is_empty());
    }
}
