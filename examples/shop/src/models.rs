//! The shop's models. The relational part (categories, customers and their profiles, products,
//! orders and their lines) lives on the SQL store; reviews and the order event log are
//! document-shaped and live on MongoDB when `MONGODB_URL` is set, otherwise on the SQL store
//! through the same models.

use chrono::{DateTime, Utc};
use polystore::ModelSchema;
use polystore::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use validator::Validate;

/// A product category; categories nest (`parent`): a self-relation.
#[derive(Model, Validate, Debug, Clone, Serialize, Deserialize)]
#[model(table = "shop_categories")]
#[model(dto(CategoryView, exclude(parent_id)))]
#[model(dto(NewCategory, create))]
pub struct Category {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    #[validate(length(min = 1, max = 60))]
    pub name: String,
    pub parent_id: Option<i64>,
    #[model(belongs_to(key = parent_id, on_delete = "set_null"))]
    pub parent: Rel<Option<Category>>,
    #[model(has_many(foreign_key = parent_id))]
    pub children: Rel<Vec<Category>>,
}

/// A customer. Read through the cache by id (`get_cached`); one Redis set of customer ids per
/// country (`set_index`).
#[derive(Model, Validate, Debug, Clone, Serialize, Deserialize)]
#[model(table = "shop_customers", cache(ttl = "5m", jitter = "30s", negative_ttl = "10s"))]
#[model(dto(CustomerView, exclude(created_at)))]
#[model(dto(NewCustomer, create))]
#[model(dto(CustomerPatch, update))]
pub struct Customer {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    #[validate(email)]
    pub email: String,
    #[validate(length(min = 1, max = 80))]
    pub name: String,
    #[model(set_index)]
    #[validate(length(equal = 2))]
    pub country: String,
    #[model(created_at)]
    pub created_at: DateTime<Utc>,
    #[model(has_one)]
    pub profile: Rel<Option<Profile>>,
    #[model(has_many)]
    pub orders: Rel<Vec<Order>>,
}

/// A customer's delivery profile: at most one per customer (1:1).
#[derive(Model, Validate, Debug, Clone, Serialize, Deserialize)]
#[model(table = "shop_profiles")]
#[model(dto(ProfileView, exclude(id, customer_id)))]
pub struct Profile {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    pub customer_id: i64,
    #[validate(length(min = 1, max = 200))]
    pub address: String,
    #[model(default = false)]
    pub newsletter: bool,
    #[model(belongs_to(on_delete = "cascade"))]
    pub customer: Rel<Customer>,
}

/// A product. Cached by id; `sold` is a Redis sorted set (the best-seller leaderboard) and
/// `category_id` a Redis set index (a category's products).
#[derive(Model, Validate, Debug, Clone, Serialize, Deserialize)]
#[model(table = "shop_products", cache(ttl = "5m", jitter = "30s"))]
#[model(index(price, id))]
#[model(dto(ProductView, exclude(created_at, updated_at)))]
#[model(dto(NewProduct, create))]
#[model(dto(ProductPatch, update))]
pub struct Product {
    #[model(primary_key, generated)]
    pub id: i64,
    #[model(unique)]
    #[validate(length(min = 3, max = 20))]
    pub sku: String,
    #[validate(length(min = 1, max = 120))]
    pub name: String,
    #[model(set_index)]
    pub category_id: i64,
    pub price: Decimal,
    #[validate(range(min = 0, max = 100000))]
    pub stock: i32,
    /// Units sold: the best-seller leaderboard's score.
    #[model(sorted_set, default = 0)]
    pub sold: i64,
    #[model(created_at)]
    pub created_at: DateTime<Utc>,
    #[model(updated_at)]
    pub updated_at: DateTime<Utc>,
    #[model(belongs_to(on_delete = "restrict"))]
    pub category: Rel<Category>,
}

/// Where an order is in its life.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[model(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Cancelled,
}

/// An order: belongs to a customer (N:1), has lines (1:N) and, through them, products (N:M).
#[derive(Model, Debug, Clone, Serialize, Deserialize)]
#[model(table = "shop_orders", index(customer_id, id))]
#[model(dto(OrderView, exclude(created_at)))]
pub struct Order {
    #[model(primary_key, generated)]
    pub id: i64,
    pub customer_id: i64,
    #[model(default = "placed")]
    pub status: OrderStatus,
    pub total: Decimal,
    #[model(created_at)]
    pub created_at: DateTime<Utc>,
    #[model(belongs_to(on_delete = "restrict"))]
    pub customer: Rel<Customer>,
    #[model(has_many)]
    pub lines: Rel<Vec<OrderLine>>,
    #[model(many_to_many(through = OrderLine))]
    pub products: Rel<Vec<Product>>,
}

/// One product of an order: the join model of orders and products.
#[derive(Model, Validate, Debug, Clone, Serialize, Deserialize)]
#[model(table = "shop_order_lines", primary_key(order_id, product_id))]
#[model(dto(LineView, exclude(order_id)))]
pub struct OrderLine {
    pub order_id: i64,
    pub product_id: i64,
    #[validate(range(min = 1, max = 100))]
    pub quantity: i32,
    pub unit_price: Decimal,
    #[model(belongs_to(on_delete = "cascade"))]
    pub order: Rel<Order>,
    #[model(belongs_to(on_delete = "restrict"))]
    pub product: Rel<Product>,
}

/// A photo attached to a review: embedded in the review document.
#[derive(Embedded, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Photo {
    /// Where the image is.
    pub url: String,
    /// What it shows.
    pub caption: String,
}

/// A product review: a document with embedded photos (MongoDB, or the SQL store).
#[derive(Model, Validate, Debug, Clone, Serialize, Deserialize)]
#[model(table = "shop_reviews", index(product_id, id))]
#[model(dto(NewReview, create))]
#[model(dto(ReviewView, exclude(created_at)))]
pub struct Review {
    #[model(primary_key, generated)]
    pub id: i64,
    pub product_id: i64,
    pub customer_id: i64,
    #[validate(range(min = 1, max = 5))]
    pub rating: i32,
    #[validate(length(max = 2000))]
    pub body: String,
    pub photos: Vec<Photo>,
    #[model(created_at)]
    pub created_at: DateTime<Utc>,
}

/// What happened to an order, in the event log.
#[derive(Model, Debug, Clone, Serialize, Deserialize)]
#[model(table = "shop_order_events", index(order_id, id))]
pub struct OrderEvent {
    #[model(primary_key, generated)]
    pub id: i64,
    pub order_id: i64,
    pub status: OrderStatus,
    /// Free-form details (the lines of a new order, the previous status of a change).
    pub details: serde_json::Value,
    #[model(created_at)]
    pub at: DateTime<Utc>,
}

/// The models stored on the SQL store, referenced tables first.
pub const SQL_MODELS: [&ModelSchema; 6] =
    [Category::SCHEMA, Customer::SCHEMA, Profile::SCHEMA, Product::SCHEMA, Order::SCHEMA, OrderLine::SCHEMA];

/// The document models (MongoDB when configured, otherwise the SQL store).
pub const DOCUMENT_MODELS: [&ModelSchema; 2] = [Review::SCHEMA, OrderEvent::SCHEMA];
