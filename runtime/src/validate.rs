//! Validation before writes: the structured report every rule failure becomes, the bridge from
//! the `validator` crate's `#[validate(...)]` rules, and business rules a model names with
//! `#[model(rule = path)]`. The same field rules also become database CHECK constraints (see
//! [`crate::schema::Check`] and the DDL writer), so a write that bypasses polystore is rejected
//! by the database itself.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Every rule a value broke, per field. Serializes to JSON for APIs:
/// `{"model":"User","violations":[{"field":"email","code":"email","params":{"value":"x"}}]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationReport {
    /// The model (or DTO) that was validated.
    pub model: &'static str,
    /// The violations, ordered by field path, then code.
    pub violations: Vec<Violation>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// The field's path: `email`, `address.city`, `items[2].name`; `__all__` for a rule over
    /// the whole value.
    pub field: String,
    /// The rule's code (`length`, `range`, `email`, or a business rule's own code).
    pub code: String,
    /// A human message, when the rule gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The rule's parameters (`min`, `max`, …) and the offending `value`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
}

impl Violation {
    /// A violation of rule `code` by `field`.
    pub fn new(field: impl Into<String>, code: impl Into<String>) -> Self {
        Violation { field: field.into(), code: code.into(), message: None, params: BTreeMap::new() }
    }

    /// Adds a human message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Adds a parameter.
    pub fn with_param(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.params.insert(name.into(), value);
        self
    }
}

impl ValidationReport {
    /// An empty report for `model`.
    pub fn new(model: &'static str) -> Self {
        ValidationReport { model, violations: Vec::new() }
    }

    /// Whether nothing was violated.
    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations of one field.
    pub fn field(&self, field: &str) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.field == field)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Adds a violation.
    pub fn push(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    /// Sorts the violations (field, then code) so reports compare and print deterministically.
    fn sort(&mut self) {
        self.violations.sort_by(|a, b| (&a.field, &a.code).cmp(&(&b.field, &b.code)));
    }

    /// `Ok(())` when empty, otherwise the report as [`crate::Error::Validation`].
    pub fn into_result(mut self) -> crate::Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            self.sort();
            Err(crate::Error::Validation(self))
        }
    }

    /// Adds every error of a `validator` run, flattening nested structs and lists into paths.
    #[cfg(feature = "validate")]
    pub fn extend_from_validator(&mut self, errors: &validator::ValidationErrors) {
        flatten(self, "", errors);
    }
}

#[cfg(feature = "validate")]
fn flatten(report: &mut ValidationReport, prefix: &str, errors: &validator::ValidationErrors) {
    use validator::ValidationErrorsKind as Kind;
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") };
        match kind {
            Kind::Field(list) => {
                for e in list {
                    let params = e.params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                    report.push(Violation {
                        field: path.clone(),
                        code: e.code.to_string(),
                        message: e.message.as_ref().map(|m| m.to_string()),
                        params,
                    });
                }
            }
            Kind::Struct(inner) => flatten(report, &path, inner),
            Kind::List(items) => {
                for (i, inner) in items {
                    flatten(report, &format!("{path}[{i}]"), inner);
                }
            }
        }
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.model)?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} fails `{}`", v.field, v.code)?;
            if let Some(m) = &v.message {
                write!(f, " ({m})")?;
            }
        }
        Ok(())
    }
}

/// Runs the `validator` rules of `value` into `report` (called by generated code).
#[cfg(feature = "validate")]
#[doc(hidden)]
pub fn run_validator<T: validator::Validate>(value: &T, report: &mut ValidationReport) {
    if let Err(errors) = value.validate() {
        report.extend_from_validator(&errors);
    }
}

/// What a business rule returns: `Ok(())`, or the violations it found.
pub type RuleResult = Result<(), Vec<Violation>>;

/// Runs a business rule into `report` (called by generated code).
#[doc(hidden)]
pub fn run_rule(result: RuleResult, report: &mut ValidationReport) {
    if let Err(violations) = result {
        report.violations.extend(violations);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_serialize_to_a_stable_json_shape() {
        let mut report = ValidationReport::new("User");
        report.push(Violation::new("name", "length").with_param("min", 1).with_param("value", ""));
        report.push(Violation::new("email", "email").with_message("not an address"));
        let err = report.into_result().unwrap_err();
        let crate::Error::Validation(report) = err else { panic!("expected a validation error") };
        assert_eq!(
            report.to_json(),
            serde_json::json!({
                "model": "User",
                "violations": [
                    {"field": "email", "code": "email", "message": "not an address"},
                    {"field": "name", "code": "length", "params": {"min": 1, "value": ""}}
                ]
            })
        );
        assert_eq!(report.to_string(), "User: email fails `email` (not an address); name fails `length`");
    }

    #[test]
    fn an_empty_report_is_ok() {
        assert!(ValidationReport::new("User").into_result().is_ok());
    }
}
