//! The HTTP routes.

pub mod catalog;
pub mod ops;
pub mod sales;

use axum::Router;
use axum::routing::{get, post};

use crate::store::Shop;

/// Every route of the shop.
pub fn router(shop: Shop) -> Router {
    use catalog::*;
    use sales::*;
    Router::new()
        .route("/categories", post(create_category))
        .route("/categories/{id}", get(get_category))
        .route("/categories/{id}/products", get(category_products))
        .route("/products", post(create_product).get(list_products))
        .route("/products/top", get(top_products))
        .route("/products/{id}", get(get_product).patch(patch_product))
        .route("/products/{id}/reviews", post(create_review).get(list_reviews))
        .route("/products/{id}/rating", get(product_rating))
        .route("/customers", post(create_customer).get(list_customers))
        .route("/customers/{id}", get(get_customer).patch(patch_customer))
        .route("/customers/{id}/profile", axum::routing::put(put_profile))
        .route("/customers/{id}/orders", get(customer_orders))
        .route("/countries/{code}/customers", get(customers_in_country))
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order).patch(patch_order))
        .route("/orders/{id}/events", get(order_events))
        .route("/reports/revenue", get(revenue))
        .route("/reports/order-events", get(event_report))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .with_state(shop)
}
