//! Field-level validation errors, collected so a client sees every problem at once.

use serde::Serialize;

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field, as a JSON path (`variants[0].sku`).
    pub field: String,
    /// A stable machine code (`required`, `too_long`, `invalid`, `invalid_character`,
    /// `out_of_range` …).
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

/// What a text may hold besides printable characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: no control character at all.
    One,
    /// Several lines: line breaks and tabs, but no other control character.
    Many,
}

impl Lines {
    fn allows(self, c: char) -> bool {
        !c.is_control() || (self == Lines::Many && matches!(c, '\n' | '\r' | '\t'))
    }
}

/// Whether a text holds the NUL character (U+0000), which no field of the hub may hold: a
/// PostgreSQL text cannot store it.
pub fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// The text with every NUL character replaced by U+FFFD, for what the hub cannot refuse (a
/// provider's message, which would only be delivered again).
pub fn without_nul(text: &mut String) {
    if has_nul(text) {
        *text = text.replace('\0', "\u{fffd}");
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

    /// A non-blank single line of at most `max` characters: a name, a title, an id, a code.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        self.non_blank(field, value, max, Lines::One);
    }

    /// A non-blank text of at most `max` characters that may run over several lines (tabs
    /// too): a message, a note, an answer.
    pub fn free_text(&mut self, field: &str, value: &str, max: usize) {
        self.non_blank(field, value, max, Lines::Many);
    }

    /// Refuses the control characters that make no sense in a text of `lines` (an optional or
    /// possibly empty one, such as a description).
    pub fn characters(&mut self, field: &str, value: &str, lines: Lines) {
        if let Some(control) = value.chars().find(|c| !lines.allows(*c)) {
            self.fail(
                field,
                "invalid_character",
                format!("must not contain the control character U+{:04X}", u32::from(control)),
            );
        }
    }

    fn non_blank(&mut self, field: &str, value: &str, max: usize, lines: Lines) {
        if value.trim().is_empty() {
            self.fail(field, "required", "must not be blank");
        } else if value.chars().count() > max {
            self.fail(field, "too_long", format!("must be at most {max} characters"));
        } else {
            self.characters(field, value, lines);
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

    fn codes(check: Check) -> Vec<String> {
        check
            .done()
            .err()
            .map_or_else(Vec::new, |Invalid(e)| e.into_iter().map(|e| e.code).collect())
    }

    #[test]
    fn single_lines_refuse_every_control_character_and_free_texts_all_but_line_breaks() {
        let mut check = Check::new();
        check.text("name", "Ann\0", 100);
        check.text("title", "two\nlines", 100);
        check.text("sku", "bell\u{7}", 100);
        check.text("c1", "x\u{85}", 100);
        assert_eq!(codes(check), ["invalid_character"; 4]);
        let mut check = Check::new();
        check.free_text("text", "Hello,\r\n\tthere", 100);
        check.text("name", "Zoë Ünal — 東京", 100);
        assert_eq!(codes(check), Vec::<String>::new());
        let mut check = Check::new();
        check.free_text("text", "nul\0", 100);
        check.characters("description", "escape \u{1b}[31m", Lines::Many);
        assert_eq!(codes(check), ["invalid_character"; 2]);
    }

    #[test]
    fn nul_is_found_and_replaced() {
        let mut text = "a\0b".to_owned();
        assert!(has_nul(&text));
        without_nul(&mut text);
        assert_eq!(text, "a\u{fffd}b");
        assert!(!has_nul(&text));
    }

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
