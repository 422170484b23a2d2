//! A Redis connection that holds nothing between samples but its stream.
//!
//! The redis crate's `MultiplexedConnection` keeps a driver task, a channel
//! and a read and a write buffer alive per connection (about 26 KiB), for a
//! connection that sits idle between samples nearly all the time: at 1000
//! targets that was 26 MB. A sample is one pipelined round trip, never two
//! at once, so this connection writes the packed commands and reads until
//! every reply has arrived, into a buffer borrowed from a small pool shared
//! by all connections (samples are spread over the interval, so few are in
//! flight at once). It implements the crate's `ConnectionLike`, so
//! pipelines run on it as on the crate's own.
//!
//! Replies are framed here ([`reply_len`]) and the four types a RESP2
//! server answers samples with (simple string, integer, bulk string,
//! array) are made into the crate's `Value`s here too, straight from the
//! buffer: the crate's parser, built on parser combinators, allocated its
//! partial states for every reply and was a tenth of the agent's CPU at
//! 1000 targets. Errors and RESP3 types go to the crate's parser.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::redis::transport::Metered;
use crate::secret::REDACTED;
use crate::untrusted::one_line;

/// What a read buffer starts with: an `INFO ALL` reply fits.
const FIRST_READ: usize = 16 * 1024;
/// Read buffers kept for reuse, and the largest kept: a huge reply's buffer
/// is given back to the allocator.
const POOLED: usize = 8;
const POOLED_CAPACITY: usize = 256 * 1024;
/// Deepest nesting of aggregates accepted; the replies a sample reads nest
/// at most four deep.
const MAX_DEPTH: usize = 32;

static BUFFERS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A read buffer from the pool, empty; back to the pool when dropped.
struct ReadBuffer(Vec<u8>);

impl ReadBuffer {
    fn take() -> ReadBuffer {
        let pooled = BUFFERS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        ReadBuffer(pooled.unwrap_or_else(|| Vec::with_capacity(FIRST_READ)))
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() <= POOLED_CAPACITY {
            buf.clear();
            let mut pool = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < POOLED {
                pool.push(buf);
            }
        }
    }
}

pub(crate) struct Connection {
    stream: Metered,
    db: i64,
    /// For each round trip: sending the commands and reading every reply.
    timeout: Duration,
}

/// A server's answer to AUTH or SELECT as it may be shown: one line, and
/// without the password (a server, or something posing as one, may echo
/// what it was sent).
fn login_error(words: &str, password: Option<&str>) -> String {
    let words = match password {
        Some(p) if !p.is_empty() => words.replace(p, REDACTED),
        _ => words.to_owned(),
    };
    one_line(&words)
}

impl Connection {
    /// Takes an open stream and logs in: `AUTH` (with `username` for an ACL
    /// user) when there is a password, then `SELECT` unless `db` is 0.
    /// The caller bounds the time this takes.
    pub(crate) async fn open(
        stream: Metered,
        username: Option<&str>,
        password: Option<&str>,
        db: i64,
        timeout: Duration,
    ) -> RedisResult<Connection> {
        let mut conn = Connection {
            stream,
            db,
            timeout,
        };
        let mut login = redis::pipe();
        if let Some(password) = password {
            let auth = login.cmd("AUTH");
            if let Some(user) = username {
                auth.arg(user);
            }
            auth.arg(password);
        }
        if db != 0 {
            login.cmd("SELECT").arg(db);
        }
        let count = usize::from(password.is_some()) + usize::from(db != 0);
        let replies = conn
            .exchange(&login.get_packed_pipeline(), 0, count)
            .await?;
        for (i, reply) in replies.into_iter().enumerate() {
            if let Value::ServerError(e) = reply {
                let words = login_error(&e.to_string(), password);
                return Err(if i == 0 && password.is_some() {
                    (ErrorKind::AuthenticationFailed, "AUTH", words).into()
                } else {
                    (ErrorKind::Client, "SELECT", words).into()
                });
            }
        }
        Ok(conn)
    }

    /// Sends `packed` and reads `skip + count` replies; returns the last
    /// `count`. Server errors come back as `Value::ServerError`.
    async fn exchange(
        &mut self,
        packed: &[u8],
        skip: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.exchange_with(packed, skip, count, |_, reply| value(reply))
            .await
    }

    /// Sends the commands of `pipeline` (not as a transaction) and hands
    /// each reply, framed but not read, to `read` with its position: a
    /// caller that knows a reply's shape can read it without making the
    /// general values first (`value` makes them for the others). What
    /// `query_async` returns for a pipeline that ignores errors.
    pub(crate) async fn round_trip<T>(
        &mut self,
        pipeline: &Pipeline,
        read: impl FnMut(usize, &[u8]) -> RedisResult<T>,
    ) -> RedisResult<Vec<T>> {
        self.exchange_with(&pipeline.get_packed_pipeline(), 0, pipeline.len(), read)
            .await
    }

    async fn exchange_with<T>(
        &mut self,
        packed: &[u8],
        skip: usize,
        count: usize,
        mut read: impl FnMut(usize, &[u8]) -> RedisResult<T>,
    ) -> RedisResult<Vec<T>> {
        let total = skip + count;
        if total == 0 {
            return Ok(Vec::new());
        }
        let timeout = self.timeout;
        let round_trip = async {
            self.stream.write_all(packed).await?;
            self.stream.flush().await?;
            let mut pooled = ReadBuffer::take();
            let buf = &mut pooled.0;
            // Where each reply ends.
            let mut ends: Vec<usize> = Vec::with_capacity(total);
            let mut parsed = 0;
            loop {
                while ends.len() < total {
                    match reply_len(&buf[parsed..]) {
                        Ok(Some(len)) => {
                            parsed += len;
                            ends.push(parsed);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            return Err(RedisError::from((
                                ErrorKind::Parse,
                                "malformed reply",
                                e.to_owned(),
                            )));
                        }
                    }
                }
                if ends.len() == total {
                    break;
                }
                if buf.len() == buf.capacity() {
                    buf.reserve(buf.len().max(FIRST_READ));
                }
                if self.stream.read_buf(buf).await? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )
                    .into());
                }
            }
            if parsed < buf.len() {
                // Nothing was asked for these bytes: the stream is out of step.
                return Err(RedisError::from((
                    ErrorKind::Parse,
                    "unexpected bytes after the replies",
                    format!("{} bytes", buf.len() - parsed),
                )));
            }
            let mut start = skip.checked_sub(1).map_or(0, |i| ends[i]);
            let mut replies = Vec::with_capacity(count);
            for (i, &end) in ends[skip..].iter().enumerate() {
                replies.push(read(i, &buf[start..end])?);
                start = end;
            }
            Ok(replies)
        };
        match tokio::time::timeout(timeout, round_trip).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no reply within {timeout:?}"),
            )
            .into()),
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut replies = self.exchange(&cmd.get_packed_command(), 0, 1).await?;
            replies
                .pop()
                .ok_or_else(|| (ErrorKind::Parse, "no reply").into())
                .and_then(Value::extract_error)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.exchange(&pipeline.get_packed_pipeline(), offset, count)
                .await
        })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

/// The length of the first complete reply (RESP2 or RESP3) in `buf`, or
/// `None` while it has not all arrived. Only finds the reply's end. No
/// recursion and no allocation, whatever the server sends: nesting deeper
/// than `MAX_DEPTH` is an error, and the stream's byte budget bounds how
/// much a server can send.
pub(crate) fn reply_len(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut at = 0;
    // Values still to read at each open level of nesting, innermost last.
    let mut open = [0u64; MAX_DEPTH + 1];
    let mut depth = 0;
    open[0] = 1;
    loop {
        while open[depth] == 0 {
            if depth == 0 {
                return Ok(Some(at));
            }
            depth -= 1;
        }
        open[depth] -= 1;
        let Some(end) = buf[at..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = &buf[at..at + end];
        let line = line.strip_suffix(b"\r").ok_or("line not ended by CRLF")?;
        let (&kind, rest) = line.split_first().ok_or("empty line")?;
        at += end + 1;
        let elements = match kind {
            // Simple string, error, integer, null, double, boolean, big number.
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => 0,
            // Bulk string, bulk error, verbatim string: a length, then the bytes.
            b'$' | b'!' | b'=' => {
                let len = length(rest)?;
                if len >= 0 {
                    let end = at + len as usize;
                    let Some(tail) = buf.get(end..end + 2) else {
                        return Ok(None);
                    };
                    if tail != b"\r\n" {
                        return Err("bulk string not ended by CRLF");
                    }
                    at = end + 2;
                }
                0
            }
            // Array, set, push: that many values follow.
            b'*' | b'~' | b'>' => length(rest)?.max(0) as u64,
            // Map: as many keys and values.
            b'%' => 2 * length(rest)?.max(0) as u64,
            // Attributes: a map, then the value they describe.
            b'|' => 2 * length(rest)?.max(0) as u64 + 1,
            _ => return Err("unknown reply type"),
        };
        if elements > 0 {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err("replies nested too deeply");
            }
            open[depth] = elements;
        }
    }
}

/// The value of one complete reply (framed by `reply_len`): as the crate's
/// parser makes it, which it does itself for what `build` leaves to it.
pub(crate) fn value(reply: &[u8]) -> RedisResult<Value> {
    let mut rest = reply;
    match build(&mut rest) {
        Some(value) if rest.is_empty() => Ok(value),
        _ => redis::parse_redis_value(reply),
    }
}

/// The RESP2 types a sample's replies have, from a framed reply; `None`
/// for anything else (an error, a RESP3 type, a malformed line).
fn build(buf: &mut &[u8]) -> Option<Value> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r")?;
    *buf = &buf[end + 1..];
    let (&kind, rest) = line.split_first()?;
    match kind {
        b'+' => {
            let text = std::str::from_utf8(rest).ok()?;
            Some(if text == "OK" {
                Value::Okay
            } else {
                Value::SimpleString(text.to_owned())
            })
        }
        b':' => Some(Value::Int(decimal(rest)?)),
        b'$' => {
            let Ok(len) = usize::try_from(length(rest).ok()?) else {
                return Some(Value::Nil);
            };
            let data = buf.get(..len)?.to_vec();
            *buf = buf.get(len + 2..)?;
            Some(Value::BulkString(data))
        }
        b'*' => {
            let Ok(len) = usize::try_from(length(rest).ok()?) else {
                return Some(Value::Nil);
            };
            // No more elements than there are bytes left, whatever the
            // count says: the scanner has framed the reply already.
            let mut items = Vec::with_capacity(len.min(buf.len() / 3));
            for _ in 0..len {
                items.push(build(buf)?);
            }
            Some(Value::Array(items))
        }
        _ => None,
    }
}

/// The items of a framed RESP2 reply in the order they come, read in place:
/// for a large reply of known shape (LATENCY HISTOGRAM's few hundred
/// integers), instead of a tree of values made and dropped again.
pub(crate) struct Items<'a> {
    rest: &'a [u8],
}

/// One item of [`Items`]: an aggregate gives its length, and its elements
/// follow as items of their own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Item<'a> {
    Array(usize),
    /// A RESP3 map of this many keys, each followed by its value.
    Map(usize),
    Int(i64),
    /// A bulk string's bytes.
    Bulk(&'a [u8]),
    /// A simple string's bytes.
    Simple(&'a [u8]),
    /// Anything else (an error, a null, another RESP3 type), skipped whole.
    Other,
}

impl<'a> Items<'a> {
    pub(crate) fn new(reply: &'a [u8]) -> Self {
        Items { rest: reply }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Skips one whole value, aggregates with all their elements.
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        let len = reply_len(self.rest).ok()??;
        self.rest = &self.rest[len..];
        Some(())
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Item<'a>;

    /// `None` at the end, and for bytes that are no RESP.
    fn next(&mut self) -> Option<Item<'a>> {
        let end = self.rest.iter().position(|&b| b == b'\n')?;
        let line = self.rest[..end].strip_suffix(b"\r")?;
        let after = &self.rest[end + 1..];
        let (&kind, digits) = line.split_first()?;
        let (item, rest) = match kind {
            b':' => (Item::Int(decimal(digits)?), after),
            b'+' => (Item::Simple(digits), after),
            b'$' => match usize::try_from(length(digits).ok()?) {
                Ok(len) => {
                    let text = after.get(..len)?;
                    (Item::Bulk(text), after.get(len + 2..)?)
                }
                Err(_) => (Item::Other, after),
            },
            b'*' => match usize::try_from(length(digits).ok()?) {
                Ok(len) => (Item::Array(len), after),
                Err(_) => (Item::Other, after),
            },
            b'%' => (
                Item::Map(usize::try_from(length(digits).ok()?).ok()?),
                after,
            ),
            // Whatever it is, it is one value: skipped whole.
            _ => {
                self.skip_value()?;
                return Some(Item::Other);
            }
        };
        self.rest = rest;
        Some(item)
    }
}

/// An element count or byte length: a decimal, -1 for null.
fn length(digits: &[u8]) -> Result<i64, &'static str> {
    let n = decimal(digits).ok_or("length is not a number")?;
    if n < -1 || n > i64::from(u32::MAX) {
        return Err("length out of range");
    }
    Ok(n)
}

/// A RESP decimal, `-?[0-9]+`, read straight from the bytes: a complete
/// reading's replies hold several hundred of them (the latency histogram's
/// buckets), and the UTF-8 check and general parser of `str::parse` were
/// most of the cost of reading them.
fn decimal(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulated towards the sign, so that i64::MIN reads too.
    let mut n: i64 = 0;
    for &byte in digits {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        let digit = i64::from(digit);
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(digit)?
        } else {
            n.checked_add(digit)?
        };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_of_each_kind_of_reply() {
        let replies: [&[u8]; 9] = [
            b"+OK\r\n",
            b"-ERR unknown command\r\n",
            b":42\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"*2\r\n$3\r\nget\r\n*1\r\n:1\r\n",
            b"%1\r\n+key\r\n=7\r\ntxt:abc\r\n",
            b"|1\r\n+ttl\r\n:3\r\n_\r\n",
        ];
        for reply in replies {
            let mut buf = reply.to_vec();
            buf.extend_from_slice(b"+next\r\n");
            assert_eq!(reply_len(&buf), Ok(Some(reply.len())), "{reply:?}");
            // Every cut short of the end waits for more.
            for cut in 0..reply.len() {
                assert_eq!(reply_len(&reply[..cut]), Ok(None), "{reply:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_bulk_string_may_hold_line_ends() {
        let reply = b"$10\r\na:1\r\nb:2\r\n\r\n";
        assert_eq!(reply_len(reply), Ok(Some(reply.len())));
    }

    #[test]
    fn garbage_is_an_error_not_a_wait() {
        for garbage in [
            &b"?what\r\n"[..],
            b"$abc\r\n",
            b"$-5\r\n",
            b"*99999999999999\r\n",
            b"$3\r\nabcd\r\n",
            b"+no carriage return\n",
            b"\r\n",
        ] {
            assert!(reply_len(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "*1\r\n".repeat(MAX_DEPTH) + ":1\r\n";
        assert_eq!(reply_len(deep.as_bytes()), Ok(Some(deep.len())));
        let deeper = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(reply_len(deeper.as_bytes()).is_err());
    }

    #[test]
    fn a_login_error_is_one_line_without_the_password() {
        assert_eq!(
            login_error("WRONGPASS p4ss is wrong\nlevel=INFO forged", Some("p4ss")),
            "WRONGPASS <redacted> is wrong\\nlevel=INFO forged"
        );
        assert_eq!(login_error("ERR DB index", None), "ERR DB index");
    }

    /// Replies as the crate's parser makes them, and as `value` does.
    #[test]
    fn values_are_the_crates_own() {
        let replies: [&[u8]; 11] = [
            b"+OK\r\n",
            b"+PONG\r\n",
            b":-42\r\n",
            b"$5\r\nhe\r\no\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*3\r\n$3\r\nget\r\n*2\r\n:1\r\n$0\r\n\r\n-ERR inner\r\n",
            b"-ERR unknown command 'LATENCY'\r\n",
            b"%1\r\n+key\r\n,1.5\r\n",
            b"+\xff\r\n",
        ];
        for reply in replies {
            let ours = value(reply);
            let theirs = redis::parse_redis_value(reply);
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{reply:?}");
        }
    }

    #[test]
    fn a_huge_count_costs_nothing_while_the_bytes_are_missing() {
        assert_eq!(reply_len(b"*4294967295\r\n:1\r\n"), Ok(None));
    }

    proptest::proptest! {
        /// `decimal` reads what `str::parse` reads of RESP's decimals, and
        /// nothing else.
        #[test]
        fn decimal_reads_as_str_parse(
            n in proptest::num::i64::ANY,
            near in "-?[0-9]{0,21}[ 0-9x]?",
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..22),
        ) {
            proptest::prop_assert_eq!(decimal(n.to_string().as_bytes()), Some(n));
            proptest::prop_assert_eq!(decimal(near.as_bytes()), near.parse::<i64>().ok());
            let parsed = std::str::from_utf8(&junk).ok().and_then(|t| t.parse::<i64>().ok());
            // `str::parse` also takes a leading '+', which RESP never sends.
            if junk.first() != Some(&b'+') {
                proptest::prop_assert_eq!(decimal(&junk), parsed);
            }
        }
    }
}
