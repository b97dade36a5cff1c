//! Operations endpoints: `/health` for readiness probes and `/metrics` for Prometheus.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use polystore::observe::{HealthReport, names, record_health_metrics, record_pool_metrics};

use crate::store::{Docs, Shop};

/// How long one store's health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Installs a Prometheus recorder as the process's `metrics` recorder, with histogram buckets
/// (seconds) for the statement durations and (rows) for the rows returned. `None`, with a
/// message on stderr, when another recorder was installed first.
pub fn install_metrics() -> Option<PrometheusHandle> {
    let seconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
    let rows = [1.0, 10.0, 100.0, 1000.0, 10000.0];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(names::OPERATION_DURATION.to_owned()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(names::RETURNED_ROWS.to_owned()), &rows));
    match builder.and_then(|b| b.install_recorder()) {
        Ok(handle) => Some(handle),
        Err(e) => {
            eprintln!("shop: no /metrics: {e}");
            None
        }
    }
}

/// `GET /health`: every store's [`HealthReport`] as a JSON array; 200 when all are reachable,
/// 503 otherwise. The reports also set the health gauges `/metrics` shows.
pub async fn health(State(shop): State<Shop>) -> Response {
    let mut reports: Vec<HealthReport> = vec![shop.db.health(HEALTH_TIMEOUT).await];
    if let Docs::Mongo(mongo) = &shop.docs {
        reports.push(mongo.health(HEALTH_TIMEOUT).await);
    }
    if let Some(redis) = &shop.redis {
        reports.push(redis.health(HEALTH_TIMEOUT).await);
    }
    record_health_metrics(&reports);
    let status = if reports.iter().all(|r| r.reachable) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(reports)).into_response()
}

/// `GET /metrics`: the pool gauges read now, then everything recorded, in Prometheus' text
/// format; 404 when no recorder is installed.
pub async fn metrics(State(shop): State<Shop>) -> Response {
    let Some(handle) = &shop.metrics else {
        return (StatusCode::NOT_FOUND, "no metrics recorder is installed\n").into_response();
    };
    record_pool_metrics(&shop.db, "shop");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}
