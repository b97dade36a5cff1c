//! Customers (create / patch DTOs, a 1:1 profile, a Redis set index per country), orders (one
//! transaction over orders, lines and stock; the order event log on the document store) and
//! the reports (revenue per customer with `select` + `sum`; events per status with an
//! aggregation pipeline on MongoDB).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use polystore::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, ApiResult, body};
use crate::models::{
    Customer, CustomerPatch, CustomerView, LineView, NewCustomer, Order, OrderEvent, OrderLine, OrderStatus, OrderView,
    Product, ProductView, Profile, ProfileView,
};
use crate::on_docs;
use crate::routes::catalog::{PageBody, page_request};
use crate::store::{Docs, Shop};

/// `POST /customers`: a `NewCustomer` → 201; a taken e-mail → 409; broken rules → 422.
pub async fn create_customer(
    State(shop): State<Shop>,
    payload: Result<Json<NewCustomer>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<CustomerView>)> {
    let customer = body(payload)?.insert(&shop.db).await?;
    Ok((StatusCode::CREATED, Json(customer.into())))
}

/// A customer with the profile (1:1) loaded.
#[derive(Debug, Serialize)]
pub struct CustomerDetail {
    /// The customer.
    #[serde(flatten)]
    pub customer: CustomerView,
    /// The delivery profile, if one was set.
    pub profile: Option<ProfileView>,
}

/// `GET /customers/{id}`: with the profile (a `has_one` relation load).
pub async fn get_customer(State(shop): State<Shop>, Path(id): Path<i64>) -> ApiResult<Json<CustomerDetail>> {
    let customer = Customer::query()
        .filter(Customer::ID.eq(id))
        .with(Customer::PROFILE)
        .first(&shop.db)
        .await?
        .ok_or(ApiError::NotFound("Customer"))?;
    let profile = customer.profile.get().cloned().flatten().map(ProfileView::from);
    Ok(Json(CustomerDetail { customer: customer.into(), profile }))
}

/// `PATCH /customers/{id}`: a `CustomerPatch`.
pub async fn patch_customer(
    State(shop): State<Shop>,
    Path(id): Path<i64>,
    payload: Result<Json<CustomerPatch>, JsonRejection>,
) -> ApiResult<Json<CustomerView>> {
    let customer = body(payload)?.update(&shop.db, id).await?;
    Ok(Json(customer.into()))
}

/// `PUT /customers/{id}/profile`: a `ProfileView` (`address`, `newsletter`); creates or
/// replaces the customer's one profile.
pub async fn put_profile(
    State(shop): State<Shop>,
    Path(id): Path<i64>,
    payload: Result<Json<ProfileView>, JsonRejection>,
) -> ApiResult<Json<ProfileView>> {
    let input = body(payload)?;
    Customer::get_cached(&shop.db, id).await?.ok_or(ApiError::NotFound("Customer"))?;
    let existing = Profile::query().filter(Profile::CUSTOMER_ID.eq(id)).first(&shop.db).await?;
    let profile = match existing {
        Some(mut p) => {
            p.address = input.address;
            p.newsletter = input.newsletter;
            p.update(&shop.db).await?
        }
        None => {
            let p = Profile {
                id: 0,
                customer_id: id,
                address: input.address,
                newsletter: input.newsletter,
                customer: Rel::default(),
            };
            p.insert(&shop.db).await?
        }
    };
    Ok(Json(profile.into()))
}

/// The query string of the listings.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// The cursor to continue after.
    pub after: Option<String>,
    /// Page size.
    pub limit: Option<u64>,
}

/// `GET /customers?after=&limit=`: by id, keyset-paginated.
pub async fn list_customers(
    State(shop): State<Shop>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<PageBody<CustomerView>>> {
    let page =
        Customer::query().order_by(Customer::ID.asc()).paginate(&shop.db, page_request(q.after, q.limit)).await?;
    Ok(Json(page.into()))
}

/// `GET /countries/{code}/customers`: from the Redis set index on `country`, by id.
pub async fn customers_in_country(
    State(shop): State<Shop>,
    Path(code): Path<String>,
) -> ApiResult<Json<Vec<CustomerView>>> {
    let mut customers = Customer::members_by_value(&shop.db, Customer::COUNTRY, code).await?;
    customers.sort_by_key(|c| c.id);
    Ok(Json(customers.into_iter().map(CustomerView::from).collect()))
}

/// One line of `POST /orders`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    /// The product.
    pub product_id: i64,
    /// How many.
    pub quantity: i32,
}

/// The body of `POST /orders`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    /// Who orders.
    pub customer_id: i64,
    /// What.
    pub lines: Vec<LineInput>,
}

/// An order with its lines.
#[derive(Debug, Serialize)]
pub struct OrderDetail {
    /// The order.
    #[serde(flatten)]
    pub order: OrderView,
    /// Its lines, by product id.
    pub lines: Vec<LineView>,
}

/// `POST /orders`: checks the customer and the stock, then in one transaction inserts the
/// order and its lines and moves stock to `sold` (which the leaderboard follows); then logs a
/// `placed` event. Unknown customer or product → 404, too little stock → 409, a line's rules
/// broken → 422.
pub async fn create_order(
    State(shop): State<Shop>,
    payload: Result<Json<OrderInput>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<OrderDetail>)> {
    let input = body(payload)?;
    if input.lines.is_empty() {
        return Err(ApiError::BadRequest("an order needs at least one line".into()));
    }
    Customer::get_cached(&shop.db, input.customer_id).await?.ok_or(ApiError::NotFound("Customer"))?;
    let mut tx = shop.db.begin().await?;
    let mut lines = Vec::with_capacity(input.lines.len());
    let mut total = Decimal::ZERO;
    for line in &input.lines {
        let product = Product::get(&mut tx, line.product_id).await?.ok_or(ApiError::NotFound("Product"))?;
        if product.stock < line.quantity {
            return Err(ApiError::Conflict(format!("{}: only {} in stock", product.sku, product.stock)));
        }
        total += product.price * Decimal::from(line.quantity);
        lines.push(OrderLine {
            order_id: 0,
            product_id: product.id,
            quantity: line.quantity,
            unit_price: product.price,
            order: Rel::default(),
            product: Rel::default(),
        });
    }
    let order = Order {
        id: 0,
        customer_id: input.customer_id,
        status: OrderStatus::Placed,
        total,
        created_at: chrono::Utc::now(),
        customer: Rel::default(),
        lines: Rel::default(),
        products: Rel::default(),
    }
    .insert(&mut tx)
    .await?;
    for line in &mut lines {
        line.order_id = order.id;
    }
    let mut lines = OrderLine::insert_many(&mut tx, &lines).await?;
    for line in &lines {
        Product::query()
            .filter(Product::ID.eq(line.product_id))
            .update_many(
                &mut tx,
                [Product::STOCK.decrement(line.quantity), Product::SOLD.increment(i64::from(line.quantity))],
            )
            .await?;
    }
    tx.commit().await?;
    log_event(&shop.docs, order.id, OrderStatus::Placed, json!({ "lines": input.lines })).await?;
    lines.sort_by_key(|l| l.product_id);
    Ok((
        StatusCode::CREATED,
        Json(OrderDetail { order: order.into(), lines: lines.into_iter().map(LineView::from).collect() }),
    ))
}

async fn log_event(docs: &Docs, order_id: i64, status: OrderStatus, details: serde_json::Value) -> ApiResult<()> {
    let event = OrderEvent { id: 0, order_id, status, details, at: chrono::Utc::now() };
    on_docs!(docs, store => event.insert(store).await)?;
    Ok(())
}

/// An order with its lines and products (a `has_many` and a `many_to_many` load).
#[derive(Debug, Serialize)]
pub struct OrderFull {
    /// The order and its lines.
    #[serde(flatten)]
    pub detail: OrderDetail,
    /// The products ordered, by id.
    pub products: Vec<ProductView>,
}

/// `GET /orders/{id}`.
pub async fn get_order(State(shop): State<Shop>, Path(id): Path<i64>) -> ApiResult<Json<OrderFull>> {
    let order = Order::query()
        .filter(Order::ID.eq(id))
        .with(Order::LINES)
        .with(Order::PRODUCTS)
        .first(&shop.db)
        .await?
        .ok_or(ApiError::NotFound("Order"))?;
    let mut lines = order.lines.get().cloned().unwrap_or_default();
    lines.sort_by_key(|l| l.product_id);
    let mut products = order.products.get().cloned().unwrap_or_default();
    products.sort_by_key(|p| p.id);
    let detail = OrderDetail { order: order.into(), lines: lines.into_iter().map(LineView::from).collect() };
    Ok(Json(OrderFull { detail, products: products.into_iter().map(ProductView::from).collect() }))
}

/// `GET /customers/{id}/orders?after=&limit=`: newest first, keyset-paginated.
pub async fn customer_orders(
    State(shop): State<Shop>,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<PageBody<OrderView>>> {
    let page = Order::query()
        .filter(Order::CUSTOMER_ID.eq(id))
        .order_by(Order::ID.desc())
        .paginate(&shop.db, page_request(q.after, q.limit))
        .await?;
    Ok(Json(page.into()))
}

/// The body of `PATCH /orders/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// The new status.
    pub status: OrderStatus,
}

/// `PATCH /orders/{id}`: `{"status":"paid"}`; logs the change.
pub async fn patch_order(
    State(shop): State<Shop>,
    Path(id): Path<i64>,
    payload: Result<Json<StatusInput>, JsonRejection>,
) -> ApiResult<Json<OrderView>> {
    let input = body(payload)?;
    let mut order = Order::get(&shop.db, id).await?.ok_or(ApiError::NotFound("Order"))?;
    let before = order.status;
    order.status = input.status;
    let order = order.update(&shop.db).await?;
    log_event(&shop.docs, id, order.status, json!({ "from": before })).await?;
    Ok(Json(order.into()))
}

/// `GET /orders/{id}/events`: the order's event log, oldest first.
pub async fn order_events(State(shop): State<Shop>, Path(id): Path<i64>) -> ApiResult<Json<Vec<EventView>>> {
    let query = OrderEvent::query().filter(OrderEvent::ORDER_ID.eq(id)).order_by(OrderEvent::ID.asc());
    let events = on_docs!(&shop.docs, store => query.all(store).await)?;
    Ok(Json(events.into_iter().map(|e| EventView { status: e.status, details: e.details }).collect()))
}

/// An event as the API shows it (without its id and time, which differ per run).
#[derive(Debug, Serialize)]
pub struct EventView {
    /// The status the order moved to.
    pub status: OrderStatus,
    /// The details.
    pub details: serde_json::Value,
}

/// A row of the revenue report.
#[derive(Debug, Serialize)]
pub struct Revenue {
    /// The customer.
    pub customer_id: i64,
    /// Their name (read through the cache).
    pub name: String,
    /// Orders not cancelled.
    pub orders: i64,
    /// What those orders total.
    pub revenue: Decimal,
}

/// `GET /reports/revenue`: per customer, orders and revenue of orders not cancelled (one
/// `GROUP BY` with `COUNT(*)` and an exact decimal `SUM`), names from the cache.
pub async fn revenue(State(shop): State<Shop>) -> ApiResult<Json<Vec<Revenue>>> {
    let rows: Vec<(i64, i64, Option<Decimal>)> = Order::query()
        .filter(Order::STATUS.ne(OrderStatus::Cancelled))
        .group_by(Order::CUSTOMER_ID)
        .order_by(Order::CUSTOMER_ID.asc())
        .select((Order::CUSTOMER_ID, count_all::<Order>(), Order::TOTAL.sum()))
        .all(&shop.db)
        .await?;
    let customers = Customer::get_many_cached(&shop.db, rows.iter().map(|r| r.0).collect()).await?;
    Ok(Json(
        rows.into_iter()
            .zip(customers)
            .map(|((customer_id, orders, sum), c)| Revenue {
                customer_id,
                name: c.map(|c| c.name).unwrap_or_default(),
                orders,
                revenue: sum.unwrap_or_default(),
            })
            .collect(),
    ))
}

/// A row of the event report.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct EventCount {
    /// The status.
    pub status: OrderStatus,
    /// How many events moved an order to it.
    pub events: i64,
}

/// `GET /reports/order-events`: events per status; an aggregation pipeline (`$group`,
/// `$sort`) on MongoDB, `GROUP BY` on the SQL store.
pub async fn event_report(State(shop): State<Shop>) -> ApiResult<Json<Vec<EventCount>>> {
    use polystore::mongo::driver::bson::doc;
    use polystore::mongo::{Accumulator, Pipeline};
    let rows = match &shop.docs {
        Docs::Mongo(mongo) => {
            #[derive(Deserialize)]
            struct Group {
                _id: OrderStatus,
                events: i64,
            }
            let groups: Vec<Group> = Pipeline::<OrderEvent>::new()
                .group(OrderEvent::STATUS, [("events", Accumulator::count())])
                .stage(doc! { "$sort": { "_id": 1 } })
                .all(mongo)
                .await?;
            groups.into_iter().map(|g| EventCount { status: g._id, events: g.events }).collect()
        }
        Docs::Sql(db) => {
            let rows: Vec<(OrderStatus, i64)> = OrderEvent::query()
                .group_by(OrderEvent::STATUS)
                .order_by(OrderEvent::STATUS.asc())
                .select((OrderEvent::STATUS, count_all::<OrderEvent>()))
                .all(db)
                .await?;
            rows.into_iter().map(|(status, events)| EventCount { status, events }).collect()
        }
    };
    Ok(Json(rows))
}
