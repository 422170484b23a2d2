//! The INFO reply parser: text in, `(section, key, value)` triples out.
//!
//! Pure and allocation-free apart from the one `Vec` of fields: every string
//! borrows from the reply. It accepts what Redis 6.0 to 7.x and Valkey print
//! (LF or CRLF line ends, `# Section` headers, `key:value` lines) and skips
//! anything else, so a hostile or truncated reply yields fewer fields, never
//! a panic.

/// One `key:value` line and the section it appeared under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// Section name as printed (`Server`, `Keyspace`, ...), empty before the first header.
    pub section: &'a str,
    pub key: &'a str,
    pub value: &'a str,
}

/// A parsed INFO reply.
#[derive(Clone, Debug, Default)]
pub struct Info<'a> {
    fields: Vec<Field<'a>>,
    /// Whether fields were left unread (`parse_at_most`).
    cut: bool,
}

impl<'a> Info<'a> {
    pub fn parse(text: &'a str) -> Self {
        Self::parse_at_most(text, usize::MAX)
    }

    /// The first `max` fields of `text`: what a reading may hold is bounded
    /// however long a hostile server's INFO is (within the reply budget).
    pub fn parse_at_most(text: &'a str, max: usize) -> Self {
        let mut fields = Vec::with_capacity((text.len() / 24).min(max));
        let mut section = "";
        let mut rest = text;
        // Lines are short (30 bytes on average): a plain scan for the end
        // of each and its first ':' costs a quarter of `split` and
        // `split_once`, whose searches are made for long haystacks.
        while !rest.is_empty() {
            let end = rest.bytes().position(|b| b == b'\n');
            let line = &rest[..end.unwrap_or(rest.len())];
            rest = end.map_or("", |end| &rest[end + 1..]);
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(header) = line.strip_prefix('#') {
                section = header.trim();
                continue;
            }
            // Keys never contain ':'; values may (`os`, `executable`, IPv6 replica addresses).
            let Some(colon) = line.bytes().position(|b| b == b':') else {
                continue;
            };
            if colon == 0 {
                continue;
            }
            if fields.len() == max {
                return Info { fields, cut: true };
            }
            fields.push(Field {
                section,
                key: &line[..colon],
                value: &line[colon + 1..],
            });
        }
        Info { fields, cut: false }
    }

    pub fn fields(&self) -> &[Field<'a>] {
        &self.fields
    }

    /// Whether `parse_at_most` left fields unread.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// The first value of `key` in any section.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.fields.iter().find(|f| f.key == key).map(|f| f.value)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Splits a structured value such as `keys=1,expires=0,avg_ttl=0` into
/// `(name, value)` pairs. Parts without `=` are skipped.
pub(crate) fn pairs(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(',').filter_map(|part| part.split_once('='))
}

/// The value of `name` within a structured value.
pub(crate) fn pair<'v>(value: &'v str, name: &str) -> Option<&'v str> {
    pairs(value).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The values of several `names` within a structured value, read in one
/// pass: `[pair(value, names[0]), pair(value, names[1]), ...]`. A
/// `cmdstat_` line has five of them, and asking `pair` for each read the
/// line five times: a third of the mapper's time.
pub(crate) fn pairs_named<'v, const N: usize>(
    value: &'v str,
    names: [&str; N],
) -> [Option<&'v str>; N] {
    let mut found = [None; N];
    for (k, v) in pairs(value) {
        if let Some(i) = names.iter().position(|name| *name == k) {
            found[i].get_or_insert(v);
        }
    }
    found
}

/// Reads an INFO value as a number the way the community exporter does:
/// `ok`/`true` are 1, `err`/`fail`/`false` are 0, anything else must parse as
/// a float. Values such as `97.42%` or `jemalloc-5.3.0` are not numbers.
pub(crate) fn number(value: &str) -> Option<f64> {
    // Most values are counts: up to 15 digits are exact in an f64 and
    // summed here at a fraction of the cost of parsing a float.
    let digits = value.as_bytes();
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let n = digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        return Some(n as f64);
    }
    match value {
        "ok" | "true" => Some(1.0),
        "err" | "fail" | "false" => Some(0.0),
        _ => value.parse::<f64>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_and_values() {
        let info = Info::parse(
            "# Server\r\nredis_version:7.0.15\r\nos:Linux 6.1 x86_64\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=10\r\n",
        );
        let fields = info.fields();
        assert_eq!(fields.len(), 3);
        assert_eq!(
            fields[0],
            Field {
                section: "Server",
                key: "redis_version",
                value: "7.0.15"
            }
        );
        assert_eq!(fields[1].value, "Linux 6.1 x86_64");
        assert_eq!(fields[2].section, "Keyspace");
        assert_eq!(pair(fields[2].value, "expires"), Some("1"));
        assert_eq!(pair(fields[2].value, "missing"), None);
        assert_eq!(
            pairs_named(fields[2].value, ["avg_ttl", "missing", "keys"]),
            [Some("10"), None, Some("3")]
        );
        // The first of a name given twice, as `pair` reads it.
        assert_eq!(pairs_named("a=1,a=2", ["a"]), [pair("a=1,a=2", "a")]);
    }

    #[test]
    fn lf_and_crlf_give_the_same_fields() {
        let lf = "# Stats\nkeyspace_hits:5\nkeyspace_misses:2\n";
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(Info::parse(lf).fields(), Info::parse(&crlf).fields());
    }

    #[test]
    fn values_keep_their_colons() {
        let info = Info::parse("slave0:ip=::1,port=7002,state=online,offset=1,lag=0\n");
        assert_eq!(pair(info.fields()[0].value, "ip"), Some("::1"));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let info = Info::parse("no colon here\n:empty key\n\u{0}\u{ff}\n#\nok:1");
        assert_eq!(info.fields().len(), 1);
        assert_eq!(info.fields()[0].section, "");
    }

    /// The parser as `split` and `split_once` say it.
    fn reference(text: &str) -> Vec<Field<'_>> {
        let mut section = "";
        let mut fields = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(header) = line.strip_prefix('#') {
                section = header.trim();
            } else if let Some((key, value)) = line.split_once(':').filter(|(k, _)| !k.is_empty()) {
                fields.push(Field {
                    section,
                    key,
                    value,
                });
            }
        }
        fields
    }

    proptest::proptest! {
        #[test]
        fn fields_are_those_of_a_split_by_lines_and_colons(text in "(?s)[a-z#:\r\n \u{e9}]{0,200}") {
            let (ours, theirs) = (Info::parse(&text), reference(&text));
            proptest::prop_assert_eq!(ours.fields(), theirs.as_slice());
        }

        #[test]
        fn a_bounded_parse_is_the_prefix_of_the_full_one(text in "(?s)[a-z#:\r\n]{0,200}", max in 0usize..12) {
            let (cut, full) = (Info::parse_at_most(&text, max), Info::parse(&text));
            let kept = full.fields().len().min(max);
            proptest::prop_assert_eq!(cut.fields(), &full.fields()[..kept]);
            proptest::prop_assert_eq!(cut.is_cut(), full.fields().len() > max);
        }

        #[test]
        fn counts_read_as_floats_read_them(n in proptest::prelude::any::<u64>(), zeros in 0usize..3) {
            let text = format!("{}{n}", "0".repeat(zeros));
            proptest::prop_assert_eq!(number(&text), text.parse::<f64>().ok());
        }
    }

    #[test]
    fn numbers_follow_the_exporter_rules() {
        assert_eq!(number("ok"), Some(1.0));
        assert_eq!(number("err"), Some(0.0));
        assert_eq!(number("fail"), Some(0.0));
        assert_eq!(number("-1"), Some(-1.0));
        assert_eq!(number("0.559224"), Some(0.559224));
        assert_eq!(number("97.42%"), None);
        assert_eq!(number("0"), Some(0.0));
        assert_eq!(number("007"), Some(7.0));
        assert_eq!(number("999999999999999"), Some(999_999_999_999_999.0));
        assert_eq!(number("18446744073709551615"), Some(18446744073709551615.0));
        assert_eq!(number("1e3"), Some(1000.0));
        assert_eq!(number("jemalloc-5.3.0"), None);
        assert_eq!(number(""), None);
    }
}
