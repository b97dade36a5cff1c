//! Monitoring against the real stores: metrics recorded at the execution points (statements,
//! MongoDB commands, cached reads and invalidations) read back from `metrics-util`'s debugging
//! recorder, the slow-statement log, error classes from real failures (a PostgreSQL
//! serialization failure) and `retry`, and health checks of every handle — also against a
//! closed port and a server that never answers — and the index advisor (HypoPG, MongoDB
//! `explain`).

#[path = "observe/advise.rs"]
mod advise;
#[path = "observe/alerts.rs"]
mod alerts;
#[path = "observe/errors.rs"]
mod errors;
#[path = "observe/health.rs"]
mod health;
#[path = "observe/metrics.rs"]
mod metrics;
#[path = "observe/scope.rs"]
mod scope;
#[path = "observe/slow.rs"]
mod slow;
#[path = "observe/support.rs"]
mod support;
#[path = "observe/tx_metrics.rs"]
mod tx_metrics;
