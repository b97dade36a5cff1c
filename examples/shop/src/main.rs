//! The shop: an HTTP service on polystore.
//!
//! ```text
//! cargo run -p shop                     # in-memory SQLite + in-process cache, on 127.0.0.1:3000
//! source .dev/env && cargo run -p shop  # PostgreSQL, MongoDB and Redis
//! ```
//!
//! `GET /health` reports every store (200 when all are reachable, 503 otherwise) and
//! `GET /metrics` renders polystore's metrics for Prometheus.
//!
//! `SHOP_ADDR` sets the address (`127.0.0.1:0` picks a free port); the other settings are in
//! `store.rs`. The first line printed is `shop listening on http://ADDR`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = shop::store::Config::from_env();
    // Installed before the stores open, so their first statements are counted too.
    let metrics = shop::routes::ops::install_metrics();
    let mut shop = match shop::store::open(&config).await {
        Ok(shop) => shop,
        Err(e) => {
            eprintln!("shop: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    shop.metrics = metrics;
    let addr = std::env::var("SHOP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("shop: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    println!("shop listening on http://{local}");
    println!("{}", shop.description);
    let app = shop::routes::router(shop.clone());
    let stopped = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    shop.db.close().await;
    if let shop::store::Docs::Mongo(mongo) = &shop.docs {
        // Ends the driver's background tasks before the runtime goes away.
        mongo.client().clone().shutdown().await;
    }
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}
