//! Categories (a self-relation), products (keyset-paginated listing, read-through cache, the
//! best-seller leaderboard, a category's products from a Redis set index) and product reviews
//! (documents with embedded photos, averaged by an aggregation pipeline on MongoDB).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use polystore::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, body};
use crate::models::{
    Category, CategoryView, NewCategory, NewProduct, NewReview, Photo, Product, ProductPatch, ProductView, Review,
    ReviewView,
};
use crate::on_docs;
use crate::store::Shop;

/// A category with its parent and children loaded.
#[derive(Debug, Serialize)]
pub struct CategoryTree {
    /// The category.
    #[serde(flatten)]
    pub category: CategoryView,
    /// Its parent, if any.
    pub parent: Option<CategoryView>,
    /// Its direct children, by id.
    pub children: Vec<CategoryView>,
}

/// `POST /categories`: `{"name":…,"parent_id":…}` → 201.
pub async fn create_category(
    State(shop): State<Shop>,
    payload: Result<Json<NewCategory>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<CategoryView>)> {
    let category = body(payload)?.insert(&shop.db).await?;
    Ok((StatusCode::CREATED, Json(category.into())))
}

/// `GET /categories/{id}`: the category, its parent and its children (two relation loads).
pub async fn get_category(State(shop): State<Shop>, Path(id): Path<i64>) -> ApiResult<Json<CategoryTree>> {
    let category = Category::query()
        .filter(Category::ID.eq(id))
        .with(Category::PARENT)
        .with(Category::CHILDREN)
        .first(&shop.db)
        .await?
        .ok_or(ApiError::NotFound("Category"))?;
    let parent = category.parent.get().cloned().flatten().map(CategoryView::from);
    let mut children: Vec<CategoryView> =
        category.children.get().cloned().unwrap_or_default().into_iter().map(CategoryView::from).collect();
    children.sort_by_key(|c| c.id);
    Ok(Json(CategoryTree { category: category.into(), parent, children }))
}

/// `GET /categories/{id}/products`: the category's products, from the Redis set index.
pub async fn category_products(State(shop): State<Shop>, Path(id): Path<i64>) -> ApiResult<Json<Vec<ProductView>>> {
    let mut products = Product::members_by_value(&shop.db, Product::CATEGORY_ID, id).await?;
    products.sort_by_key(|p| p.id);
    Ok(Json(products.into_iter().map(ProductView::from).collect()))
}

/// The body of `POST /products`: a `NewProduct` without `sold` (a new product has sold none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Stock-keeping unit, unique.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// The category.
    pub category_id: i64,
    /// Unit price.
    pub price: Decimal,
    /// Units in stock.
    pub stock: i32,
}

/// `POST /products` → 201; a taken SKU → 409; broken rules → 422.
pub async fn create_product(
    State(shop): State<Shop>,
    payload: Result<Json<ProductInput>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ProductView>)> {
    let p = body(payload)?;
    let new =
        NewProduct { sku: p.sku, name: p.name, category_id: p.category_id, price: p.price, stock: p.stock, sold: 0 };
    let product = new.insert(&shop.db).await?;
    Ok((StatusCode::CREATED, Json(product.into())))
}

/// `GET /products/{id}`: read through the cache.
pub async fn get_product(State(shop): State<Shop>, Path(id): Path<i64>) -> ApiResult<Json<ProductView>> {
    let product = Product::get_cached(&shop.db, id).await?.ok_or(ApiError::NotFound("Product"))?;
    Ok(Json(product.into()))
}

/// `PATCH /products/{id}`: a `ProductPatch` (only the fields sent are written).
pub async fn patch_product(
    State(shop): State<Shop>,
    Path(id): Path<i64>,
    payload: Result<Json<ProductPatch>, JsonRejection>,
) -> ApiResult<Json<ProductView>> {
    let product = body(payload)?.update(&shop.db, id).await?;
    Ok(Json(product.into()))
}

/// The query string of `GET /products`.
#[derive(Debug, Deserialize)]
pub struct ProductFilter {
    /// Only this category.
    pub category: Option<i64>,
    /// Only products at most this expensive (a decimal, `12.50`).
    pub max_price: Option<String>,
    /// The cursor of the page to continue after (`next` of the previous page).
    pub after: Option<String>,
    /// Page size (default 20, at most 100).
    pub limit: Option<u64>,
}

/// A page of a keyset-paginated listing.
#[derive(Debug, Serialize)]
pub struct PageBody<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

impl<M, T: From<M>> From<Page<M>> for PageBody<T> {
    fn from(page: Page<M>) -> Self {
        PageBody { items: page.items.into_iter().map(T::from).collect(), next: page.next.map(|c| c.to_string()) }
    }
}

/// The page request of a listing: after a cursor, or the first page.
pub fn page_request(after: Option<String>, limit: Option<u64>) -> PageRequest {
    let size = limit.unwrap_or(20).clamp(1, 100);
    match after {
        Some(cursor) => PageRequest::after(cursor, size),
        None => PageRequest::first(size),
    }
}

/// `GET /products?category=&max_price=&after=&limit=`: cheapest first, by keyset.
pub async fn list_products(
    State(shop): State<Shop>,
    Query(f): Query<ProductFilter>,
) -> ApiResult<Json<PageBody<ProductView>>> {
    let mut query = Product::query().order_by(Product::PRICE.asc());
    if let Some(category) = f.category {
        query = query.filter(Product::CATEGORY_ID.eq(category));
    }
    if let Some(max) = f.max_price {
        let max: Decimal =
            max.parse().map_err(|_| ApiError::BadRequest(format!("max_price {max:?} is not a number")))?;
        query = query.filter(Product::PRICE.le(max));
    }
    let page = query.paginate(&shop.db, page_request(f.after, f.limit)).await?;
    Ok(Json(page.into()))
}

/// The query string of `GET /products/top`.
#[derive(Debug, Deserialize)]
pub struct TopQuery {
    /// How many (default 3).
    pub n: Option<usize>,
}

/// A leaderboard entry.
#[derive(Debug, Serialize)]
pub struct BestSeller {
    /// The product.
    pub product: ProductView,
    /// Units sold (the sorted set's score).
    pub sold: f64,
}

/// `GET /products/top?n=3`: the best sellers, from the Redis sorted set.
pub async fn top_products(State(shop): State<Shop>, Query(q): Query<TopQuery>) -> ApiResult<Json<Vec<BestSeller>>> {
    let top = Product::top_by(&shop.db, Product::SOLD, q.n.unwrap_or(3).min(100)).await?;
    Ok(Json(top.into_iter().map(|(p, sold)| BestSeller { product: p.into(), sold }).collect()))
}

/// The body of `POST /products/{id}/reviews`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// Who writes it.
    pub customer_id: i64,
    /// 1 to 5 stars.
    pub rating: i32,
    /// The text.
    pub body: String,
    /// Attached photos (embedded in the review).
    #[serde(default)]
    pub photos: Vec<Photo>,
}

/// `POST /products/{id}/reviews` → 201, on the document store.
pub async fn create_review(
    State(shop): State<Shop>,
    Path(id): Path<i64>,
    payload: Result<Json<ReviewInput>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<ReviewView>)> {
    let input = body(payload)?;
    Product::get_cached(&shop.db, id).await?.ok_or(ApiError::NotFound("Product"))?;
    let new = NewReview {
        product_id: id,
        customer_id: input.customer_id,
        rating: input.rating,
        body: input.body,
        photos: input.photos,
    };
    let review = on_docs!(&shop.docs, store => new.insert(store).await)?;
    Ok((StatusCode::CREATED, Json(review.into())))
}

/// `GET /products/{id}/reviews`: oldest first.
pub async fn list_reviews(State(shop): State<Shop>, Path(id): Path<i64>) -> ApiResult<Json<Vec<ReviewView>>> {
    let query = Review::query().filter(Review::PRODUCT_ID.eq(id)).order_by(Review::ID.asc());
    let reviews = on_docs!(&shop.docs, store => query.all(store).await)?;
    Ok(Json(reviews.into_iter().map(ReviewView::from).collect()))
}

/// A product's rating.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Rating {
    /// How many reviews.
    pub reviews: i64,
    /// The mean rating; `null` without reviews.
    pub average: Option<f64>,
}

/// `GET /products/{id}/rating`: an aggregation pipeline on MongoDB (`$match`, `$group`), the
/// same numbers from `select` (`COUNT(*)`, `AVG`) on the SQL store.
pub async fn product_rating(State(shop): State<Shop>, Path(id): Path<i64>) -> ApiResult<Json<Rating>> {
    use polystore::mongo::{Accumulator, Pipeline};
    let rating = match &shop.docs {
        crate::store::Docs::Mongo(mongo) => {
            #[derive(Deserialize)]
            struct Group {
                reviews: i64,
                average: Option<f64>,
            }
            let groups: Vec<Group> = Pipeline::<Review>::new()
                .filter(Review::PRODUCT_ID.eq(id))
                .group_all([("reviews", Accumulator::count()), ("average", Accumulator::avg(Review::RATING))])
                .all(mongo)
                .await?;
            groups
                .into_iter()
                .next()
                .map(|g| Rating { reviews: g.reviews, average: g.average })
                .unwrap_or(Rating { reviews: 0, average: None })
        }
        crate::store::Docs::Sql(db) => {
            let (reviews, average) = Review::query()
                .filter(Review::PRODUCT_ID.eq(id))
                .select((count_all::<Review>(), Review::RATING.avg()))
                .one(db)
                .await?;
            Rating { reviews, average }
        }
    };
    Ok(Json(rating))
}
