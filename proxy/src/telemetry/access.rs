//! The access log line: one JSON object per request, written straight into the log buffer.
//!
//! Every request logs, so this is on the hot path. Going through `tracing`'s JSON formatter cost about 5 µs per
//! request (a visitor per field, `fmt::Write` through several layers, a timestamp formatted from scratch); writing
//! the same object by hand costs a fraction of that. The line keeps the shape `tracing` gave it (same field names,
//! `timestamp`, `level`, `message`, `target: "access"`), so log queries written against it keep working. With the
//! text format, or when the `access` target is filtered out, the record goes through `tracing` as before.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::BufferedStdout;

/// One finished request, as the gateway saw it. Borrowed: nothing is copied until the line is written.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// A configured host's name (validated when the config loaded: no quote, backslash or control byte) or `-`.
    pub host: &'a str,
    pub method: &'a str,
    /// The path without the query (a query may carry `code=` or `state=`).
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub upstream: Option<Duration>,
    /// The sidecar's own word (`bearer`, `session`, `anonymous`): written as it is.
    pub auth: &'static str,
    /// The caller's subject (oid/sub), never a token.
    pub subject: Option<&'a str>,
    /// The sidecar's own word (`allow`, `login_redirect`, ...): written as it is.
    pub decision: &'static str,
    pub reason: &'a str,
    pub route_line: Option<usize>,
    pub error: Option<&'a str>,
}

/// Where JSON access lines go when the fast writer is on (set by [`super::init`] for the JSON format).
static SINK: OnceLock<BufferedStdout> = OnceLock::new();

pub(super) fn install(sink: BufferedStdout) {
    let _ = SINK.set(sink);
}

thread_local! {
    /// The line being built, reused: no allocation per request once it has grown.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
    /// The formatted `YYYY-MM-DDTHH:MM:SS` of the last second seen on this thread.
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

/// Logs one request: by hand into the JSON buffer when installed and `access` is enabled, else via `tracing`.
pub fn log(r: &AccessRecord<'_>) {
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return;
    }
    match SINK.get() {
        Some(sink) => LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            write_json(&mut line, r, SystemTime::now());
            let _ = sink.clone().write_all(&line);
        }),
        None => tracing::info!(
            target: "access",
            host = r.host,
            method = r.method,
            path = r.path,
            status = r.status,
            latency_ms = r.latency.as_secs_f64() * 1000.0,
            upstream_ms = r.upstream.map(|d| d.as_secs_f64() * 1000.0),
            auth = r.auth,
            subject = r.subject,
            decision = r.decision,
            reason = r.reason,
            route_line = r.route_line,
            error = r.error,
            "request"
        ),
    }
}

/// The JSON object of one record and its newline. Field order and names follow what `tracing`'s flattened JSON
/// printed before; absent optional fields are left out, as there.
pub fn write_json(out: &mut Vec<u8>, r: &AccessRecord<'_>, at: SystemTime) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, at);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"host\":");
    plain(out, r.host);
    out.extend_from_slice(b",\"method\":");
    string(out, r.method);
    out.extend_from_slice(b",\"path\":");
    string(out, r.path);
    out.extend_from_slice(b",\"status\":");
    decimal(out, u64::from(r.status));
    out.extend_from_slice(b",\"latency_ms\":");
    millis(out, r.latency);
    if let Some(u) = r.upstream {
        out.extend_from_slice(b",\"upstream_ms\":");
        millis(out, u);
    }
    out.extend_from_slice(b",\"auth\":");
    plain(out, r.auth);
    if let Some(s) = r.subject {
        out.extend_from_slice(b",\"subject\":");
        string(out, s);
    }
    out.extend_from_slice(b",\"decision\":");
    plain(out, r.decision);
    out.extend_from_slice(b",\"reason\":");
    string(out, r.reason);
    if let Some(l) = r.route_line {
        out.extend_from_slice(b",\"route_line\":");
        decimal(out, l as u64);
    }
    if let Some(e) = r.error {
        out.extend_from_slice(b",\"error\":");
        string(out, e);
    }
    out.extend_from_slice(b",\"target\":\"access\"}\n");
}

/// Milliseconds with microsecond precision (`12.345`), from integers: no float formatting.
fn millis(out: &mut Vec<u8>, d: Duration) {
    // In u64: `as_micros` is a u128, whose division by 1000 below would go through a software routine.
    let us = d.as_secs().saturating_mul(1_000_000).saturating_add(u64::from(d.subsec_micros()));
    decimal(out, us / 1000);
    out.push(b'.');
    zero_padded(out, us % 1000, 3);
}

/// An unsigned integer in decimal, by `itoa` (two digits per step) rather than `fmt`'s machinery: the line has
/// several per request.
fn decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `n` in decimal with at least `width` digits (leading zeros), `width` from 1 to 18: the digits of
/// `10^width + n` without its leading `1` when `n` is below `10^width`.
fn zero_padded(out: &mut Vec<u8>, n: u64, width: u32) {
    let floor = 10u64.pow(width.clamp(1, 18));
    if n >= floor {
        return decimal(out, n);
    }
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(&buf.format(floor + n).as_bytes()[1..]);
}

/// `2026-11-29T20:10:27.571777Z`; the seconds part is formatted once per second per thread.
fn timestamp(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.0 != secs {
            *cell = (secs, format_second(secs));
        }
        out.extend_from_slice(&cell.1);
    });
    out.push(b'.');
    zero_padded(out, u64::from(since.subsec_micros()), 6);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC, by Howard Hinnant's days-to-civil algorithm.
fn format_second(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    let mut buf = [0u8; 19];
    let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}");
    let n = text.len().min(19);
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
    buf
}

/// A JSON string that needs no escaping: one of the sidecar's own words or a validated config value (the caller
/// says which). Checked in debug builds.
fn plain(out: &mut Vec<u8>, s: &str) {
    debug_assert!(first_escape(s.as_bytes()).is_none(), "{s:?} needs escaping");
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// A JSON string: quotes, backslashes and control characters escaped (RFC 8259 §7). A client controls the path,
/// so nothing it sends can break out of the string or the line.
fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut rest = s.as_bytes();
    // Nearly every field needs no escaping: find the next byte that does and copy the run before it at once,
    // instead of deciding byte by byte what to write (this ran at about 25 instructions per byte).
    while let Some(i) = first_escape(rest) {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// The bytes a JSON string cannot hold as they are (DEL too, so that no terminal control reaches a log viewer).
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// Where the first byte that [`needs_escape`] is, looking at eight bytes at a time: on the bench's session line
/// this took 440 instructions per request off the byte-by-byte search (`bench/instructions.sh`).
fn first_escape(s: &[u8]) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else { break };
        if may_need_escape(u64::from_le_bytes(word)) {
            if let Some(i) = chunk.iter().position(|&b| needs_escape(b)) {
                return Some(base + i);
            }
        }
        base += 8;
    }
    chunks.remainder().iter().position(|&b| needs_escape(b)).map(|i| base + i)
}

/// True when some byte of `x` may be one that [`needs_escape`] (the word tests of "Bit Twiddling Hacks": a byte
/// below 0x20, or equal to `"`, `\\` or DEL). The caller confirms byte by byte, so a false positive would only cost
/// time; bytes of 0x80 and above (UTF-8) never match.
#[inline]
fn may_need_escape(x: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let equal = |c: u8| {
        let y = x ^ (ONES * u64::from(c));
        y.wrapping_sub(ONES) & !y & HIGH
    };
    (below_space | equal(b'"') | equal(b'\\') | equal(0x7f)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>() -> AccessRecord<'a> {
        AccessRecord {
            host: "api.example.com",
            method: "GET",
            path: "/api/items",
            status: 200,
            latency: Duration::from_micros(11_816),
            upstream: Some(Duration::from_micros(7_805)),
            auth: "bearer",
            subject: Some("99999999-8888-7777-6666-555555555555"),
            decision: "allow",
            reason: "",
            route_line: Some(28),
            error: None,
        }
    }

    fn line(r: &AccessRecord<'_>, at: SystemTime) -> serde_json::Value {
        let mut out = Vec::new();
        write_json(&mut out, r, at);
        assert_eq!(out.last(), Some(&b'\n'), "one line per record");
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            1,
            "exactly one newline"
        );
        serde_json::from_slice(&out).expect("the line is valid JSON")
    }

    #[test]
    fn the_line_has_the_documented_fields() {
        let at = UNIX_EPOCH + Duration::new(1_795_983_027, 571_777_000);
        let v = line(&record(), at);
        assert_eq!(v["timestamp"], "2026-11-29T20:10:27.571777Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request");
        assert_eq!(v["target"], "access");
        assert_eq!(v["host"], "api.example.com");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/api/items");
        assert_eq!(v["status"], 200);
        assert_eq!(v["latency_ms"].as_f64(), Some(11.816));
        assert_eq!(v["upstream_ms"].as_f64(), Some(7.805));
        assert_eq!(v["auth"], "bearer");
        assert_eq!(v["subject"], "99999999-8888-7777-6666-555555555555");
        assert_eq!(v["decision"], "allow");
        assert_eq!(v["reason"], "");
        assert_eq!(v["route_line"], 28);
        assert!(v.get("error").is_none());
    }

    #[test]
    fn absent_fields_are_left_out() {
        let r = AccessRecord {
            upstream: None,
            subject: None,
            route_line: None,
            error: Some("ConnectRefused"),
            ..record()
        };
        let v = line(&r, SystemTime::now());
        assert!(
            v.get("upstream_ms").is_none()
                && v.get("subject").is_none()
                && v.get("route_line").is_none()
        );
        assert_eq!(v["error"], "ConnectRefused");
    }

    #[test]
    fn client_controlled_text_cannot_break_the_line() {
        let nasty = "/a\"b\\c\nd\re\tf\u{1}g\u{7f}h/é";
        let r = AccessRecord {
            path: nasty,
            reason: "x\"}{\"status\":1",
            ..record()
        };
        let v = line(&r, SystemTime::now());
        assert_eq!(v["path"], nasty);
        assert_eq!(v["reason"], "x\"}{\"status\":1");
        assert_eq!(v["status"], 200);
    }

    #[test]
    fn timestamps_match_a_calendar() {
        // Leap day, end of year, the epoch, and a second formatted twice on one thread (the per-second cache).
        for (secs, want) in [
            (0u64, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_704_067_199, "2023-12-31T23:59:59"),
            (4_107_542_400, "2100-03-01T00:00:00"),
        ] {
            assert_eq!(std::str::from_utf8(&format_second(secs)).unwrap(), want);
            let mut out = Vec::new();
            timestamp(&mut out, UNIX_EPOCH + Duration::new(secs, 1_000));
            timestamp(&mut out, UNIX_EPOCH + Duration::new(secs, 2_000));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{want}.000001Z{want}.000002Z")
            );
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0u64, 7, 10, 404, 65_535, u64::MAX] {
            let mut out = Vec::new();
            decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
            for width in [1u32, 3, 6] {
                let mut out = Vec::new();
                zero_padded(&mut out, n, width);
                assert_eq!(out, format!("{n:0w$}", w = width as usize).into_bytes());
            }
        }
    }

    proptest::proptest! {
        /// Whatever a client puts in the path, the line stays one valid JSON object that gives the path back.
        #[test]
        fn any_path_round_trips_through_the_line(path in "\\PC*|[\\x00-\\x7f]*") {
            let r = AccessRecord { path: &path, ..record() };
            let v = line(&r, SystemTime::now());
            proptest::prop_assert_eq!(v["path"].as_str(), Some(path.as_str()));
            proptest::prop_assert_eq!(&v["status"], 200);
        }

        /// The word-at-a-time search finds exactly the byte a byte-by-byte search finds, for any bytes.
        #[test]
        fn the_word_search_agrees_with_the_byte_search(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            proptest::prop_assert_eq!(first_escape(&bytes), bytes.iter().position(|&b| needs_escape(b)));
        }
    }

    #[test]
    fn the_word_search_finds_each_special_byte_in_every_lane() {
        for special in (0u8..0x20).chain([b'"', b'\\', 0x7f]) {
            for at in 0..19 {
                let mut bytes = vec![b'a'; 19];
                bytes[at] = special;
                assert_eq!(first_escape(&bytes), Some(at), "{special:#x} at {at}");
            }
        }
        let clean: Vec<u8> = (0x20u8..=0xff).filter(|&b| !needs_escape(b)).collect();
        assert_eq!(first_escape(&clean), None);
    }

    #[test]
    fn sub_millisecond_latencies_keep_their_digits() {
        let mut out = Vec::new();
        millis(&mut out, Duration::from_nanos(42_999));
        assert_eq!(out, b"0.042");
        out.clear();
        millis(&mut out, Duration::from_secs(3));
        assert_eq!(out, b"3000.000");
    }
}
