//! How errors become HTTP responses: a JSON body and a status.
//!
//! | error | status | body |
//! |---|---|---|
//! | `Error::Validation` (the app's rules, before any write) | 422 | the `ValidationReport`: `{"model":…,"violations":[…]}` |
//! | a CHECK constraint the database enforced | 422 | `{"error":…,"constraint":…}` |
//! | `Error::UniqueViolation` | 409 | `{"error":"conflict","model":…,"fields":[…]}` |
//! | a foreign key refused (unknown or still referenced row) | 409 | `{"error":…,"constraint":…}` |
//! | `Error::NotFound`, an unknown id | 404 | `{"error":"not found","model":…}` |
//! | an unreadable body, a bad cursor | 400 | `{"error":…}` |
//! | anything else | 500 | `{"error":"internal error"}` (the detail goes to stderr) |

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use polystore::{ConstraintKind, Error};
use serde_json::json;

/// An error a handler returns.
#[derive(Debug)]
pub enum ApiError {
    /// From polystore.
    Store(Error),
    /// The request cannot be read (400).
    BadRequest(String),
    /// The request conflicts with the current state (409).
    Conflict(String),
    /// No such row (404).
    NotFound(&'static str),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Store(e)
    }
}

/// The body of a request, or a 400 saying why it cannot be read (unknown or missing fields,
/// wrong types, malformed JSON).
pub fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload.map(|Json(value)| value).map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// The result type of the handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, json!({ "error": message })),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, json!({ "error": message })),
            ApiError::NotFound(model) => (StatusCode::NOT_FOUND, json!({ "error": "not found", "model": model })),
            ApiError::Store(e) => store_error(e),
        };
        (status, Json(body)).into_response()
    }
}

fn store_error(e: Error) -> (StatusCode, serde_json::Value) {
    match e {
        Error::Validation(report) => (StatusCode::UNPROCESSABLE_ENTITY, report.to_json()),
        Error::UniqueViolation { model, fields, .. } => {
            (StatusCode::CONFLICT, json!({ "error": "conflict", "model": model, "fields": fields }))
        }
        Error::NotFound { model } => (StatusCode::NOT_FOUND, json!({ "error": "not found", "model": model })),
        Error::InvalidCursor(message) => (StatusCode::BAD_REQUEST, json!({ "error": message })),
        Error::ConstraintViolation { kind: ConstraintKind::Check, constraint, message, .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, json!({ "error": message, "constraint": constraint }))
        }
        Error::ConstraintViolation { kind: ConstraintKind::ForeignKey, constraint, message, .. } => {
            (StatusCode::CONFLICT, json!({ "error": message, "constraint": constraint }))
        }
        other => {
            eprintln!("shop: internal error: {other}");
            (StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": "internal error" }))
        }
    }
}
