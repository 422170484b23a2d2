//! The replies of a sample's commands read into plain values (`reading`),
//! pure. Each reader takes what the server answered and says why it cannot
//! use it: the server's refusal (a command renamed, disabled, unknown) or a
//! reply of another shape. Lenient where the exporter is: a field it does
//! not know or cannot read is left out, not an error.
//!
//! `LATENCY HISTOGRAM`, the one large reply of a complete reading (a few
//! hundred integers), is read in place from its bytes ([`latency_histogram`]);
//! the others are small and read from the connection's `Value`s.

use std::fmt;

use redis::Value;

use crate::reading::{CommandHistogram, LatencyEvent, ScriptOutcome, SentinelMaster, Slowlog};
use crate::redis::connection::{self, Item, Items};

/// Why a reply could not be read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ReplyError {
    /// The server's error: the command is refused, unknown or disabled.
    Refused(String),
    /// The server answered with something of another kind (`an integer`, `nil`, ...).
    Unexpected(&'static str),
    /// The reply is not of the shape the command gives: what is wrong with it.
    Malformed(&'static str),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Refused(message) => f.write_str(message),
            ReplyError::Unexpected(what) => write!(f, "answered {what}"),
            ReplyError::Malformed(what) => f.write_str(what),
        }
    }
}

/// The refusal in a reply that is not what was asked for.
fn refusal(value: Option<&Value>) -> ReplyError {
    match value {
        Some(Value::ServerError(e)) => ReplyError::Refused(e.to_string()),
        other => ReplyError::Unexpected(describe(other)),
    }
}

/// What a reply is, for messages.
pub(crate) fn describe(value: Option<&Value>) -> &'static str {
    match value {
        None => "nothing",
        Some(Value::Nil) => "nil",
        Some(Value::Int(_)) => "an integer",
        Some(Value::Array(_)) => "an array",
        Some(Value::Map(_)) => "a map",
        Some(Value::ServerError(_)) => "an error",
        Some(_) => "an unexpected type",
    }
}

/// An integer, or a bulk string holding a number.
pub(crate) fn int(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Int(n) => Some(*n as f64),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// A bulk or simple string as text (invalid UTF-8 replaced).
pub(crate) fn bytes_text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Pairs of an array (RESP2) or a map (RESP3); nothing of anything else.
pub(crate) fn pairs_of(value: &Value) -> Vec<(&Value, &Value)> {
    let (flat, map): (&[Value], &[(Value, Value)]) = match value {
        Value::Array(items) => (items, &[]),
        Value::Map(items) => (&[], items),
        _ => (&[], &[]),
    };
    flat.chunks_exact(2)
        .map(|kv| (&kv[0], &kv[1]))
        .chain(map.iter().map(|(k, v)| (k, v)))
        .collect()
}

/// A command that answers text: `INFO`, `CLUSTER INFO`, `CLIENT LIST`.
pub(crate) fn text(value: Option<Value>) -> Result<String, ReplyError> {
    match value {
        Some(Value::BulkString(bytes)) => Ok(String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Some(Value::VerbatimString { text, .. }) => Ok(text),
        other => Err(refusal(other.as_ref())),
    }
}

/// `SLOWLOG LEN` is an integer; `SLOWLOG GET 1` an array of at most one
/// entry `[id, timestamp, duration_us, args, ...]`.
pub(crate) fn slowlog(len: Option<&Value>, last: Option<&Value>) -> Result<Slowlog, ReplyError> {
    for reply in [len, last] {
        if let Some(Value::ServerError(e)) = reply {
            return Err(ReplyError::Refused(e.to_string()));
        }
    }
    let length = int(len).ok_or(ReplyError::Malformed(
        "SLOWLOG LEN did not answer an integer",
    ))?;
    let mut slowlog = Slowlog {
        length,
        ..Slowlog::default()
    };
    if let Some(Value::Array(entries)) = last
        && let Some(Value::Array(entry)) = entries.first()
    {
        slowlog.last_id = int(entry.first()).unwrap_or(0.0);
        slowlog.last_duration_micros = int(entry.get(2)).unwrap_or(0.0);
    }
    Ok(slowlog)
}

/// A `CONFIG GET` reply: a flat name/value array (RESP2) or a map (RESP3).
pub(crate) fn config_pairs(value: Value) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    };
    pairs_of(&value)
        .into_iter()
        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
        .collect()
}

/// `LATENCY LATEST`: `[event, unix time, latest ms, max ms]` per event.
pub(crate) fn latency_latest(value: Option<Value>) -> Result<Vec<LatencyEvent>, ReplyError> {
    let Some(Value::Array(entries)) = value else {
        return Err(refusal(value.as_ref()));
    };
    Ok(entries
        .iter()
        .filter_map(|entry| match entry {
            Value::Array(fields) => Some(LatencyEvent {
                event: bytes_text(fields.first()?)?,
                last_timestamp: int(fields.get(1))?,
                latest_ms: int(fields.get(2))?,
            }),
            _ => None,
        })
        .collect())
}

/// `SENTINEL MASTERS`, then per master of `masters` the replies of
/// CKQUORUM, SENTINELS and SLAVES. Only an error of SENTINEL MASTERS means
/// the commands are refused; a failed CKQUORUM is a reading (no quorum).
pub(crate) fn sentinel(
    replies: &mut impl Iterator<Item = Value>,
    masters: &[String],
) -> Result<Vec<SentinelMaster>, ReplyError> {
    let entries = match replies.next() {
        Some(Value::Array(items) | Value::Set(items)) => items,
        Some(Value::Map(_)) => Vec::new(),
        other => {
            // The replies of the commands per master go with it, so that
            // the commands after these read their own.
            replies.take(3 * masters.len()).for_each(drop);
            return Err(refusal(other.as_ref()));
        }
    };
    let mut out: Vec<SentinelMaster> = entries.iter().map(|e| master(&fields(e))).collect();
    for name in masters {
        let ckquorum = match replies.next() {
            Some(Value::ServerError(e)) => Some(Err(e.to_string())),
            Some(v) => Some(Ok(bytes_text(&v).unwrap_or_else(|| "OK".to_owned()))),
            None => None,
        };
        let sentinels = healthy(replies.next());
        let slaves = healthy(replies.next());
        if let Some(m) = out.iter_mut().find(|m| m.name == *name) {
            m.ckquorum = ckquorum;
            // This sentinel counts itself: SENTINELS lists only its peers.
            m.ok_sentinels = sentinels.map(|n| n + 1.0);
            m.ok_slaves = slaves;
        }
    }
    Ok(out)
}

/// The fields of one entry of a SENTINEL listing, numbers as text.
fn fields(entry: &Value) -> Vec<(String, String)> {
    pairs_of(entry)
        .into_iter()
        .filter_map(|(k, v)| {
            Some((
                bytes_text(k)?,
                bytes_text(v).or_else(|| int(Some(v)).map(|n| n.to_string()))?,
            ))
        })
        .collect()
}

/// One entry of `SENTINEL MASTERS`.
fn master(fields: &[(String, String)]) -> SentinelMaster {
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let num = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok());
    SentinelMaster {
        name: get("name").unwrap_or("").to_owned(),
        address: format!("{}:{}", get("ip").unwrap_or(""), get("port").unwrap_or("")),
        quorum: num("quorum"),
        failover_timeout_ms: num("failover-timeout"),
        parallel_syncs: num("parallel-syncs"),
        down_after_ms: num("down-after-milliseconds"),
        config_epoch: num("config-epoch"),
        last_ok_ping_reply_ms: num("last-ok-ping-reply"),
        ckquorum: None,
        ok_sentinels: None,
        ok_slaves: None,
    }
}

/// How many peers or replicas of a listing are not flagged down
/// (subjectively or objectively).
fn healthy(list: Option<Value>) -> Option<f64> {
    match list? {
        Value::Array(items) | Value::Set(items) => Some(
            items
                .iter()
                .filter(|item| {
                    !fields(item).iter().any(|(k, v)| {
                        k == "flags" && v.split(',').any(|f| f == "s_down" || f == "o_down")
                    })
                })
                .count() as f64,
        ),
        _ => None,
    }
}

/// A user's script answers a flat array of key, value, key, value...;
/// values that are not numbers are left out.
pub(crate) fn script(value: Option<Value>) -> Result<ScriptOutcome, ReplyError> {
    match value {
        Some(Value::Array(items)) if items.is_empty() => Ok(ScriptOutcome::Empty),
        Some(Value::Array(items)) => Ok(ScriptOutcome::Values(
            items
                .chunks_exact(2)
                .filter_map(|kv| {
                    let key = bytes_text(&kv[0])?;
                    let value = int(Some(&kv[1])).or_else(|| bytes_text(&kv[1])?.parse().ok())?;
                    Some((key, value))
                })
                .collect(),
        )),
        Some(Value::Nil) | None => Ok(ScriptOutcome::Empty),
        Some(Value::ServerError(e)) => Err(ReplyError::Refused(e.to_string())),
        Some(_) => Err(ReplyError::Malformed(
            "must return a flat array of key, value pairs",
        )),
    }
}

/// `LATENCY HISTOGRAM` (Redis 7.0+), from the framed reply: per command,
/// `calls` and `histogram_usec` (bucket upper bound in µs → cumulative
/// count), buckets in ascending order.
///
/// Read in place: the reply's items are walked once and nothing is made
/// but command names and bucket lists. What a field holds is read as the
/// `Value` readers above read it (an integer or a numeric bulk string; a
/// pair list from an array or a map; anything else left out), and the unit
/// and property tests compare this with a plain reader over those values.
pub(crate) fn latency_histogram(reply: &[u8]) -> Result<Vec<CommandHistogram>, ReplyError> {
    let mut items = Items::new(reply);
    let read = match items.next() {
        Some(head @ (Item::Array(_) | Item::Map(_))) => {
            let mut out = Vec::with_capacity(room_for(&items, head));
            each_pair(&mut items, head, |items, cmd| {
                match text_of(cmd) {
                    Some(cmd) => out.push(command_histogram(items, cmd)?),
                    None => {
                        skip(items, cmd)?;
                        skip_value(items)?;
                    }
                }
                Some(())
            })
            .map(|()| out)
        }
        _ => None,
    };
    // Not a list of commands, or not readable: what the server said instead.
    read.ok_or_else(|| refusal(connection::value(reply).ok().as_ref()))
}

/// One command's `[calls, n, histogram_usec, [le, count, ...]]`, after its name.
fn command_histogram(items: &mut Items<'_>, cmd: &[u8]) -> Option<CommandHistogram> {
    let (mut calls, mut buckets) = (0.0, Vec::new());
    let details = items.next()?;
    each_pair(items, details, |items, key| {
        match text_of(key) {
            Some(b"calls") => calls = number(items)?.unwrap_or(0.0),
            Some(b"histogram_usec") => {
                let list = items.next()?;
                buckets.clear();
                buckets.reserve(room_for(items, list));
                each_pair(items, list, |items, le| {
                    let le = number_of(items, le)?;
                    if let (Some(le), Some(count)) = (le, number(items)?) {
                        buckets.push((le, count));
                    }
                    Some(())
                })?;
            }
            Some(_) => skip_value(items)?,
            None => {
                skip(items, key)?;
                skip_value(items)?;
            }
        }
        Some(())
    })?;
    if !buckets.is_sorted_by(|a: &(f64, f64), b| a.0.total_cmp(&b.0).is_le()) {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Some(CommandHistogram {
        cmd: String::from_utf8_lossy(cmd).into_owned(),
        calls,
        buckets,
    })
}

/// Calls `each` with the first item of every pair of the aggregate that
/// `head` opens (an array's elements two by two, an odd last one skipped;
/// a map's keys); `each` reads the rest of the pair. Anything that is no
/// aggregate has no pairs. `None`: the items are not readable.
fn each_pair<'a>(
    items: &mut Items<'a>,
    head: Item<'a>,
    mut each: impl FnMut(&mut Items<'a>, Item<'a>) -> Option<()>,
) -> Option<()> {
    let (pairs, odd) = match head {
        Item::Array(n) => (pair_count(head), n % 2 == 1),
        Item::Map(_) => (pair_count(head), false),
        other => return skip(items, other),
    };
    for _ in 0..pairs {
        let first = items.next()?;
        each(items, first)?;
    }
    if odd {
        skip_value(items)?;
    }
    Some(())
}

/// How many pairs `each_pair` gives of the aggregate that `head` opens.
fn pair_count(head: Item<'_>) -> usize {
    match head {
        Item::Array(n) => n / 2,
        Item::Map(n) => n,
        _ => 0,
    }
}

/// Room for the pairs of `head`, but no more than the bytes left can hold
/// (a pair is at least eight): the count is the server's word.
fn room_for(items: &Items<'_>, head: Item<'_>) -> usize {
    pair_count(head).min(items.remaining() / 8)
}

/// A string item's bytes.
fn text_of<'a>(item: Item<'a>) -> Option<&'a [u8]> {
    match item {
        Item::Bulk(text) | Item::Simple(text) => Some(text),
        _ => None,
    }
}

/// The number in the next value: an integer, or a bulk string that parses
/// as one (as [`int`] reads it); `Some(None)` for anything else.
fn number(items: &mut Items<'_>) -> Option<Option<f64>> {
    let item = items.next()?;
    number_of(items, item)
}

/// [`number`] of an item already taken.
fn number_of<'a>(items: &mut Items<'a>, item: Item<'a>) -> Option<Option<f64>> {
    Some(match item {
        Item::Int(n) => Some(n as f64),
        Item::Bulk(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        other => {
            skip(items, other)?;
            None
        }
    })
}

/// Skips the elements of the aggregate that `item` opens, if it does.
fn skip<'a>(items: &mut Items<'a>, item: Item<'a>) -> Option<()> {
    let elements = match item {
        Item::Array(n) => n,
        Item::Map(n) => 2 * n,
        _ => 0,
    };
    for _ in 0..elements {
        skip_value(items)?;
    }
    Some(())
}

/// Skips the next value, aggregates with all their elements.
fn skip_value(items: &mut Items<'_>) -> Option<()> {
    items.skip_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowlog_entry() {
        let len = Value::Int(3);
        let last = Value::Array(vec![Value::Array(vec![
            Value::Int(41),
            Value::Int(1700000000),
            Value::Int(12500),
            Value::Array(vec![]),
        ])]);
        let s = slowlog(Some(&len), Some(&last)).expect("valid");
        assert_eq!(
            s,
            Slowlog {
                length: 3.0,
                last_id: 41.0,
                last_duration_micros: 12500.0
            }
        );
    }

    #[test]
    fn empty_slowlog_is_zero() {
        let s = slowlog(Some(&Value::Int(0)), Some(&Value::Array(vec![]))).expect("valid");
        assert_eq!(s, Slowlog::default());
    }

    #[test]
    fn config_reply_shapes() {
        let flat = Value::Array(vec![
            Value::BulkString(b"maxmemory".to_vec()),
            Value::BulkString(b"0".to_vec()),
        ]);
        assert_eq!(
            config_pairs(flat),
            vec![("maxmemory".to_owned(), "0".to_owned())]
        );
        let map = Value::Map(vec![(
            Value::SimpleString("databases".into()),
            Value::BulkString(b"16".to_vec()),
        )]);
        assert_eq!(
            config_pairs(map),
            vec![("databases".to_owned(), "16".to_owned())]
        );
    }

    #[test]
    fn a_refused_sentinel_masters_takes_its_masters_replies_along() {
        let refused = connection::value(b"-NOPERM no permission\r\n").expect("an error");
        let masters = ["a".to_owned()];
        let mut replies = vec![
            refused.clone(),
            refused.clone(),
            refused.clone(),
            refused,
            bulk("id=1 name=x"),
        ]
        .into_iter();
        assert!(matches!(
            sentinel(&mut replies, &masters),
            Err(ReplyError::Refused(_))
        ));
        assert_eq!(
            text(replies.next()),
            Ok("id=1 name=x".to_owned()),
            "the next command's reply"
        );
    }

    /// RESP2 bytes of a value tree, as a server writes them.
    fn resp(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Value::SimpleString(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Value::BulkString(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    resp(item, out);
                }
            }
            Value::Map(pairs) => {
                out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                for (k, v) in pairs {
                    resp(k, out);
                    resp(v, out);
                }
            }
            Value::Nil => out.extend_from_slice(b"$-1\r\n"),
            other => panic!("not written by these tests: {other:?}"),
        }
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn command(cmd: &str, calls: i64, buckets: &[(i64, i64)]) -> [Value; 2] {
        let flat = buckets
            .iter()
            .flat_map(|&(le, n)| [Value::Int(le), Value::Int(n)])
            .collect();
        [
            bulk(cmd),
            Value::Array(vec![
                bulk("calls"),
                Value::Int(calls),
                bulk("histogram_usec"),
                Value::Array(flat),
            ]),
        ]
    }

    /// The plain reader the in-place one must agree with: the reply made
    /// into values, each field read as the `Value` readers read it.
    fn reference(value: Option<Value>) -> Result<Vec<CommandHistogram>, ReplyError> {
        let value = match value {
            Some(v @ (Value::Array(_) | Value::Map(_))) => v,
            other => return Err(refusal(other.as_ref())),
        };
        let is_text = |value: &Value, text: &str| match value {
            Value::BulkString(b) => b == text.as_bytes(),
            Value::SimpleString(s) => s == text,
            _ => false,
        };
        let mut out = Vec::new();
        for (cmd, details) in pairs_of(&value) {
            let Some(cmd) = bytes_text(cmd) else { continue };
            let mut calls = 0.0;
            let mut buckets = Vec::new();
            for (key, v) in pairs_of(details) {
                if is_text(key, "calls") {
                    calls = int(Some(v)).unwrap_or(0.0);
                } else if is_text(key, "histogram_usec") {
                    buckets = pairs_of(v)
                        .into_iter()
                        .filter_map(|(le, count)| Some((int(Some(le))?, int(Some(count))?)))
                        .collect();
                }
            }
            buckets.sort_by(|a: &(f64, f64), b| a.0.total_cmp(&b.0));
            out.push(CommandHistogram {
                cmd,
                calls,
                buckets,
            });
        }
        Ok(out)
    }

    fn both(
        reply: &Value,
    ) -> (
        Result<Vec<CommandHistogram>, ReplyError>,
        Result<Vec<CommandHistogram>, ReplyError>,
    ) {
        let mut bytes = Vec::new();
        resp(reply, &mut bytes);
        let plain = reference(connection::value(&bytes).ok());
        (latency_histogram(&bytes), plain)
    }

    #[test]
    fn latency_histogram_of_redis_7() {
        let reply = Value::Array(
            [
                command(
                    "set",
                    100_012,
                    &[(1, 99_000), (2, 99_900), (4, 100_000), (8, 100_012)],
                ),
                command("get", 7, &[(16, 7)]),
                command("config|get", 1, &[(131_072, 1)]),
            ]
            .concat(),
        );
        let (read, plain) = both(&reply);
        let read = read.expect("the usual shape");
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].cmd, "set");
        assert_eq!(read[0].calls, 100_012.0);
        assert_eq!(read[0].buckets[3], (8.0, 100_012.0));
        assert_eq!(read[2].cmd, "config|get");
        assert_eq!(Ok(read), plain);
    }

    #[test]
    fn latency_histogram_refused_or_odd() {
        let refused = b"-ERR unknown subcommand 'HISTOGRAM'\r\n";
        let error = latency_histogram(refused).expect_err("refused");
        assert!(
            matches!(&error, ReplyError::Refused(m) if m.contains("unknown subcommand")),
            "{error}"
        );
        assert_eq!(
            latency_histogram(b":3\r\n"),
            Err(ReplyError::Unexpected("an integer"))
        );
        // Buckets out of order, a bound as a bulk string, a map for details.
        let reply = Value::Array(vec![
            bulk("get"),
            Value::Map(vec![
                (
                    bulk("histogram_usec"),
                    Value::Array(vec![
                        Value::Int(8),
                        Value::Int(3),
                        bulk("2"),
                        Value::Int(1),
                        Value::Nil,
                        Value::Int(9),
                    ]),
                ),
                (Value::SimpleString("calls".into()), bulk("3")),
            ]),
        ]);
        let (read, plain) = both(&reply);
        assert_eq!(read, plain);
        let read = read.expect("read");
        assert_eq!(read[0].buckets, [(2.0, 1.0), (8.0, 3.0)]);
        assert_eq!(read[0].calls, 3.0);
    }

    fn histogram_like() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            (-3i64..200_000).prop_map(Value::Int),
            prop_oneof![
                Just("calls"),
                Just("histogram_usec"),
                Just("set"),
                Just("x"),
                Just("1e3"),
                Just("-0"),
            ]
            .prop_map(bulk),
            Just(Value::SimpleString("calls".to_owned())),
            Just(Value::Nil),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever the reply, reading it in place gives what the plain
        /// reader gives.
        #[test]
        fn latency_histogram_reads_as_the_plain_reader(
            commands in proptest::collection::vec(
                ("[a-z|]{1,8}", 0i64..1_000_000, proptest::collection::vec((1i64..1 << 30, 0i64..1 << 40), 0..12)),
                0..6,
            ),
            odd in histogram_like(),
        ) {
            let mut items: Vec<Value> = commands
                .iter()
                .flat_map(|(cmd, calls, buckets)| command(cmd, *calls, buckets))
                .collect();
            let (read, plain) = both(&Value::Array(items.clone()));
            proptest::prop_assert!(read.is_ok(), "the usual shape is read");
            proptest::prop_assert_eq!(read, plain);
            for reply in [
                {
                    items.push(odd.clone());
                    Value::Array(items.clone())
                },
                {
                    items.push(odd.clone());
                    Value::Array(items)
                },
                odd,
            ] {
                let (read, plain) = both(&reply);
                proptest::prop_assert_eq!(read, plain);
            }
        }
    }
}
