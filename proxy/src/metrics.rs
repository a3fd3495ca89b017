//! Prometheus metrics, served on the admin listener.
//!
//! One process-wide registry: counters are cheap atomics, so the core modules call these functions directly rather
//! than threading a handle through every layer.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    verifications: IntCounterVec,
    jwks_fetches: IntCounterVec,
    latency: HistogramVec,
    /// The hot outcome, resolved once: a repeated token is the common case.
    cached: prometheus::IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new("oidc_sidecar_requests_total", "Requests by host, status and decision"),
        &["host", "status", "decision"],
    )
    .expect("static metric definition");
    let verifications = IntCounterVec::new(
        Opts::new("oidc_sidecar_token_verifications_total", "Token verification outcomes by reason"),
        &["outcome"],
    )
    .expect("static metric definition");
    let jwks_fetches = IntCounterVec::new(
        Opts::new("oidc_sidecar_jwks_fetches_total", "Discovery and JWKS fetches by result"),
        &["result"],
    )
    .expect("static metric definition");
    let latency = HistogramVec::new(
        HistogramOpts::new("oidc_sidecar_request_duration_seconds", "Request latency as seen by the sidecar")
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        &["host"],
    )
    .expect("static metric definition");
    for c in [
        Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(verifications.clone()),
        Box::new(jwks_fetches.clone()),
        Box::new(latency.clone()),
    ] {
        registry.register(c).expect("metric names are unique");
    }
    let cached = verifications.with_label_values(&["cached"]);
    Metrics { registry, requests, verifications, jwks_fetches, latency, cached }
});

/// One finished request. `host` is the configured host name (never the raw Host header: bounded label set).
///
/// Looking a labelled series up hashes its labels and takes a lock; a thread sees few distinct
/// (host, status, decision) combinations, so each thread keeps the handles it used last and finds them by a
/// short scan instead.
pub fn request(host: &str, status: u16, decision: &str, seconds: f64) {
    HOT.with(|hot| {
        let mut hot = hot.borrow_mut();
        let i = match hot.iter().position(|h| h.status == status && h.host == host && h.decision == decision) {
            Some(i) => i,
            None => {
                let m = &*METRICS;
                if hot.len() >= HOT_SERIES {
                    hot.remove(0);
                }
                hot.push(Hot {
                    host: host.to_owned(),
                    status,
                    decision: decision.to_owned(),
                    requests: m.requests.with_label_values(&[host, &status.to_string(), decision]),
                    latency: m.latency.with_label_values(&[host]),
                });
                hot.len() - 1
            }
        };
        hot[i].requests.inc();
        hot[i].latency.observe(seconds);
    });
}

/// How many request series a thread keeps at hand.
const HOT_SERIES: usize = 16;

/// A request series' handles, as one thread last used them.
struct Hot {
    host: String,
    status: u16,
    decision: String,
    requests: prometheus::IntCounter,
    latency: prometheus::Histogram,
}

thread_local! {
    static HOT: std::cell::RefCell<Vec<Hot>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One token verification; `outcome` is `ok`, `cached` or the error kind (`expired`, `audience`, ...).
pub fn verification(outcome: &str) {
    if outcome == "cached" {
        METRICS.cached.inc();
    } else {
        METRICS.verifications.with_label_values(&[outcome]).inc();
    }
}

/// One discovery or JWKS fetch; `ok` false counts a failure.
pub fn jwks_fetch(ok: bool) {
    METRICS.jwks_fetches.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    if encoder.encode(&METRICS.registry.gather(), &mut buf).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &str, host: &str, status: u16, decision: &str) -> u64 {
        let want = format!(
            "oidc_sidecar_requests_total{{decision=\"{decision}\",host=\"{host}\",status=\"{status}\"}} "
        );
        text.lines().find_map(|l| l.strip_prefix(want.as_str())).map_or(0, |v| v.trim().parse().unwrap())
    }

    #[test]
    fn every_request_is_counted_in_its_own_series_past_the_per_thread_handles() {
        // More series than a thread keeps at hand, interleaved, so handles are evicted and found again.
        let host = "metrics-test.example.com";
        for round in 0..3 {
            for status in 200..(200 + HOT_SERIES as u16 + 4) {
                request(host, status, "allow", 0.001);
                if round == 0 {
                    request(host, status, "forbidden", 0.002);
                }
            }
        }
        let text = render();
        for status in 200..(200 + HOT_SERIES as u16 + 4) {
            assert_eq!(count(&text, host, status, "allow"), 3, "status {status}\n{text}");
            assert_eq!(count(&text, host, status, "forbidden"), 1, "status {status}");
        }
        let observed = format!("oidc_sidecar_request_duration_seconds_count{{host=\"{host}\"}} ");
        let n: u64 = text.lines().find_map(|l| l.strip_prefix(observed.as_str())).unwrap().trim().parse().unwrap();
        assert_eq!(n, 4 * (HOT_SERIES as u64 + 4));
    }
}
