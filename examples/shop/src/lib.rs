//! The shop example as a library: the models, the stores they run on, the HTTP routes and how
//! errors become responses. The `shop` binary serves it; the `migrate` binary links it so the
//! migration CLI sees its models.

pub mod error;
pub mod models;
pub mod routes;
pub mod store;
