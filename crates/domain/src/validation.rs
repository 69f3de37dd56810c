//! Field-level validation errors, collected so a client sees every problem at once.

use serde::Serialize;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field, as a JSON path (`variants[0].sku`).
    pub field: String,
    /// A stable machine code (`required`, `too_long`, `invalid`, `out_of_range` …).
    pub code: String,
    pub message: String,
}

/// A request that breaks the rules; carries every field error found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("validation failed: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
pub struct Invalid(pub Vec<FieldError>);

impl Invalid {
    pub fn one(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Invalid(vec![FieldError {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }])
    }
}

/// Collects field errors while a value is checked.
#[derive(Debug, Default)]
pub struct Check(Vec<FieldError>);

impl Check {
    pub fn new() -> Self {
        Check::default()
    }

    pub fn fail(&mut self, field: impl Into<String>, code: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        });
    }

    /// A non-blank string of at most `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.fail(field, "required", "must not be blank");
        } else if value.chars().count() > max {
            self.fail(field, "too_long", format!("must be at most {max} characters"));
        }
    }

    pub fn range(&mut self, field: &str, value: f64, min: f64, max: f64) {
        if !(min..=max).contains(&value) {
            self.fail(field, "out_of_range", format!("must be between {min} and {max}"));
        }
    }

    pub fn done(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_request_reads_as_each_field_with_its_message() {
        let mut invalid = Invalid::one("email", "taken", "is used by another account");
        invalid
            .0
            .extend(Invalid::one("name", "required", "must not be empty").0);
        assert_eq!(
            invalid.to_string(),
            "validation failed: email: is used by another account; name: must not be empty"
        );
    }
}
