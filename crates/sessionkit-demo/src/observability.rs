//! `GET /metrics`: the session store's metrics in Prometheus text format.
//!
//! The library records through the `metrics` facade and exports nothing itself (`sessionkit::telemetry`); the
//! demo installs `metrics-exporter-prometheus`'s recorder as the process's global recorder ([`install_prometheus`],
//! called by the binary's `main`) and serves its rendering ([`with_metrics`]). The route sits outside the session
//! and CSRF layers: a scrape neither makes nor touches a session.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of the `*_duration_seconds` histograms: 50 µs to 1 s (a Redis round trip on the same host is tens
/// of microseconds, a remote SQL write milliseconds).
pub const DURATION_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Installs the Prometheus recorder as the process's global `metrics` recorder (once per process: a second call
/// fails with [`BuildError::FailedToSetGlobalRecorder`]) and returns the handle that renders a scrape.
pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), DURATION_BUCKETS)?
        .install_recorder()
}

/// `app` with `GET /metrics` answering `handle`'s rendering (Prometheus text format 0.0.4).
pub fn with_metrics(app: Router, handle: PrometheusHandle) -> Router {
    app.route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                // The exporter's periodic housekeeping (histogram buffers), done at each scrape.
                handle.run_upkeep();
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
            }
        }),
    )
}
