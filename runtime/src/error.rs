//! The one error type every polystore operation returns, with variants a caller can match.

use std::fmt;

/// A specialised `Result` for polystore operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a polystore operation.
///
/// Constraint violations are classified so that callers can react to them without parsing
/// driver messages: a duplicate e-mail address is [`Error::UniqueViolation`] naming the model,
/// the constraint and the fields involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No row matched a lookup that needs one (find by key, update, delete).
    #[error("{model}: no row matches the given key")]
    NotFound {
        /// The model's name.
        model: &'static str,
    },

    /// A unique index or primary key would hold the same value twice.
    #[error("{model}: unique constraint {} violated (fields: {})", constraint.as_deref().unwrap_or("?"), fields.join(", "))]
    UniqueViolation {
        /// The model's name.
        model: &'static str,
        /// The constraint or index name, when the database reports it.
        constraint: Option<String>,
        /// The model fields (Rust names) the constraint covers, when known.
        fields: Vec<&'static str>,
    },

    /// Another constraint (foreign key, not null, check) rejected the write.
    #[error("{model}: {kind} constraint {} violated: {message}", constraint.as_deref().unwrap_or("?"))]
    ConstraintViolation {
        /// The model's name.
        model: &'static str,
        /// Which kind of constraint.
        kind: ConstraintKind,
        /// The constraint name, when the database reports it.
        constraint: Option<String>,
        /// The database's own message.
        message: String,
    },

    /// A stored value could not be turned into the model's field.
    #[error("{model}.{field}: cannot decode the stored value: {source}")]
    Decode {
        /// The model's name.
        model: &'static str,
        /// The field's Rust name.
        field: &'static str,
        /// What went wrong.
        #[source]
        source: ValueError,
    },

    /// A Rust value could not be turned into a stored value.
    #[error("{model}.{field}: cannot encode the value: {source}")]
    Encode {
        /// The model's name.
        model: &'static str,
        /// The field's Rust name (or `?` for a free-standing query parameter).
        field: &'static str,
        /// What went wrong.
        #[source]
        source: ValueError,
    },

    /// A query returned a different number of rows than the operation needs.
    #[error("{model}: expected exactly one row, found {found}")]
    NotExactlyOne {
        /// The model's name.
        model: &'static str,
        /// How many rows were found (2 means "two or more").
        found: u64,
    },

    /// A pagination cursor could not be used: it is malformed, was altered, or was made for a
    /// query with another ordering.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),

    /// A value broke validation rules (field rules, business rules) before reaching the store.
    /// The report names every failing field with its rule's code and parameters.
    #[error("validation failed: {0}")]
    Validation(crate::validate::ValidationReport),

    /// A statement failed inside a PostgreSQL transaction, which aborted it; the transaction was
    /// rolled back instead of committed.
    #[error("the transaction was aborted by a failed statement and has been rolled back")]
    TransactionAborted,

    /// The store could not be reached, or a pooled connection could not be had in time.
    #[error("connection to {store} failed: {message}")]
    Connection {
        /// Which store (`postgresql`, `sqlite`, `mongodb`, `redis`).
        store: &'static str,
        /// The driver's message.
        message: String,
    },

    /// A URL or option was not usable.
    #[error("configuration error: {0}")]
    Config(String),

    /// The store cannot run the requested operation.
    #[error("{store} does not support {what}")]
    Unsupported {
        /// Which store.
        store: &'static str,
        /// What was asked for.
        what: String,
    },

    /// Any other error reported by the database.
    #[error("database error{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Database {
        /// The SQLSTATE or store-specific code, when known.
        code: Option<String>,
        /// The database's message.
        message: String,
    },

    /// An error of the driver that fits none of the variants above.
    #[error(transparent)]
    Driver(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// The kinds of constraint besides unique ones that a database can enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    /// A foreign key.
    ForeignKey,
    /// A NOT NULL column.
    NotNull,
    /// A CHECK constraint.
    Check,
    /// A PostgreSQL exclusion constraint.
    Exclusion,
}

impl fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::NotNull => "not null",
            ConstraintKind::Check => "check",
            ConstraintKind::Exclusion => "exclusion",
        })
    }
}

/// Why a single value could not be converted between Rust and the store.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The stored value has another type than the field.
    #[error("expected {expected}, found {found}")]
    TypeMismatch {
        /// What the field needs.
        expected: &'static str,
        /// What the store held.
        found: &'static str,
    },
    /// A NULL was found where the field is not an `Option`.
    #[error("unexpected NULL for a non-optional field")]
    UnexpectedNull,
    /// The number does not fit the field's integer type.
    #[error("{value} is out of range for {target}")]
    OutOfRange {
        /// The stored number.
        value: String,
        /// The field's type.
        target: &'static str,
    },
    /// Text that should hold a date, UUID, decimal or enum variant does not parse.
    #[error("cannot parse {input:?} as {target}: {message}")]
    Parse {
        /// The stored text (truncated to 64 characters).
        input: String,
        /// What it should have been.
        target: &'static str,
        /// The parser's message.
        message: String,
    },
    /// serde could not (de)serialize an embedded value.
    #[error("serde: {0}")]
    Serde(String),
    /// The driver could not read the column.
    #[error("driver: {0}")]
    Driver(String),
}

impl ValueError {
    /// A [`ValueError::Parse`] with the input shortened for display.
    pub fn parse(input: &str, target: &'static str, message: impl fmt::Display) -> Self {
        let input: String = input.chars().take(64).collect();
        ValueError::Parse { input, target, message: message.to_string() }
    }
}

impl Error {
    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The validation report, for [`Error::Validation`].
    pub fn validation(&self) -> Option<&crate::validate::ValidationReport> {
        match self {
            Error::Validation(report) => Some(report),
            _ => None,
        }
    }

    /// True for [`Error::UniqueViolation`].
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::UniqueViolation { .. })
    }
}
