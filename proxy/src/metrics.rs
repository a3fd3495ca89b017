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
pub fn request(host: &str, status: u16, decision: &str, seconds: f64) {
    let m = &*METRICS;
    m.requests.with_label_values(&[host, &status.to_string(), decision]).inc();
    m.latency.with_label_values(&[host]).observe(seconds);
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
