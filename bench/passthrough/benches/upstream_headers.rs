//! What Pingora charges for the upstream request's header edits every identity-forwarding proxy makes: the part of
//! the plumbing (bench system (c'')) that no check can avoid.
//!
//! Each case starts from the request head a session request arrives with in `bench/run.sh` (`Host` and a 570-byte
//! session `Cookie`) and does what Pingora and the sidecar's gateway do to it on the way upstream:
//! - `clone`: the copy Pingora makes of the downstream head (bare Pingora (c*) pays this too);
//! - `drop_cookie`: and the session cookie removed;
//! - `identity_spelled`: and the ten identity and forwarding headers appended with their prepared spelling (`Bytes`),
//!   as the gateway did on 30 Nov until it took the head apart;
//! - `identity_header_name`: the same with `http::HeaderName` names, which Pingora re-spells (title case) per header:
//!   the gateway before that;
//! - `identity_spelled_to_wire`: `identity_spelled` plus writing the head out as HTTP/1.1 bytes;
//! - `identity_parts`: the gateway now: Pingora's copy taken apart into `http` parts, the cookie removed and the
//!   same ten headers appended to the plain `HeaderMap` after one reservation, names lower-case, the head rebuilt;
//! - `identity_parts_to_wire`: `identity_parts` plus writing the head out.
//!
//! `cargo bench -p bare-pingora --bench upstream_headers -- --warm-up-time 1 --measurement-time 3`

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use http::{HeaderName, HeaderValue};
use pingora::http::{IntoCaseHeaderName, RequestHeader};

/// The headers the sidecar adds for the bench's cookie session (names as it spells them, values of the same sizes).
fn identity_headers() -> Vec<(&'static str, String)> {
    vec![
        ("X-Auth-Subject", "00000000-0000-0000-0000-0000000000b1".into()),
        ("X-Auth-Name", "Bench User".into()),
        ("X-Auth-Email", "bench.user@example.com".into()),
        ("X-Auth-Scopes", "bench.read".into()),
        ("X-Auth-Tenant", "11111111-1111-1111-1111-111111111111".into()),
        ("X-Auth-Method", "session".into()),
        ("X-Auth-Assertion", "e".repeat(700)),
        ("x-forwarded-for", "127.0.0.1".into()),
        ("x-forwarded-proto", "http".into()),
        ("x-forwarded-host", "127.0.0.1:18084".into()),
    ]
}

fn downstream() -> RequestHeader {
    let mut h = RequestHeader::build("GET", b"/bench/resource", Some(2)).expect("head");
    h.append_header(Bytes::from_static(b"Host"), "127.0.0.1:18084").expect("host");
    let cookie = format!("__Host-oidc_session={}", "s".repeat(550));
    h.append_header(Bytes::from_static(b"Cookie"), cookie.as_str()).expect("cookie");
    h
}

/// The upstream head as the gateway leaves it: Pingora's copy, the session cookie out, the identity headers in.
fn upstream<N: IntoCaseHeaderName + Clone>(down: &RequestHeader, headers: &[(N, HeaderValue)]) -> RequestHeader {
    let mut up = down.clone();
    up.remove_header("cookie");
    for (n, v) in headers {
        up.append_header(n.clone(), v.clone()).expect("append");
    }
    up
}

/// The upstream head as the gateway builds it now: taken apart, edited as a plain `HeaderMap`, rebuilt.
fn upstream_parts(down: &RequestHeader, headers: &[(HeaderName, HeaderValue)]) -> RequestHeader {
    let mut parts: http::request::Parts = down.clone().into();
    parts.headers.remove(http::header::COOKIE);
    parts.headers.try_reserve(headers.len()).expect("reserve");
    for (n, v) in headers {
        parts.headers.try_append(n.clone(), v.clone()).expect("append");
    }
    RequestHeader::from(parts)
}

fn bench_headers(c: &mut Criterion) {
    let down = downstream();
    let spelled: Vec<(Bytes, HeaderValue)> = identity_headers()
        .into_iter()
        .map(|(n, v)| (Bytes::from_static(n.as_bytes()), HeaderValue::from_str(&v).expect("value")))
        .collect();
    let named: Vec<(HeaderName, HeaderValue)> = identity_headers()
        .into_iter()
        .map(|(n, v)| {
            let name = HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).expect("name");
            (name, HeaderValue::from_str(&v).expect("value"))
        })
        .collect();

    let mut g = c.benchmark_group("upstream_headers");
    g.bench_function("clone", |b| b.iter(|| black_box(down.clone())));
    g.bench_function("drop_cookie", |b| {
        b.iter(|| {
            let mut up = down.clone();
            up.remove_header("cookie");
            black_box(up)
        })
    });
    g.bench_function("identity_spelled", |b| b.iter(|| black_box(upstream(&down, &spelled))));
    g.bench_function("identity_header_name", |b| b.iter(|| black_box(upstream(&down, &named))));
    to_wire(&mut g, "identity_spelled_to_wire", || upstream(&down, &spelled));
    g.bench_function("identity_parts", |b| b.iter(|| black_box(upstream_parts(&down, &named))));
    to_wire(&mut g, "identity_parts_to_wire", || upstream_parts(&down, &named));
    g.finish();
}

/// A head built by `make` and written out as HTTP/1.1 bytes, into a buffer reused across iterations.
fn to_wire(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, make: impl Fn() -> RequestHeader) {
    g.bench_function(name, |b| {
        let mut buf = bytes::BytesMut::with_capacity(4096);
        b.iter(|| {
            let up = make();
            buf.clear();
            up.header_to_h1_wire(&mut buf);
            black_box(buf.len())
        })
    });
}

criterion_group!(benches, bench_headers);
criterion_main!(benches);
