//! Reading submitted forms: fields by name, empty fields as absent, typed values with their
//! mistakes named as the API names them, the quantity fields (`qty:<sku>`) of forms that pick
//! lines of an order, and the values a form is drawn with.

use omnihub_domain::Invalid;
use omnihub_domain::orders::ItemLine;
use omnihub_domain::validation::Check;
use serde::de::DeserializeOwned;

use crate::page::Feedback;

/// A submitted form, field by field, in the order sent.
pub type Fields = Vec<(String, String)>;

/// The field's value, trimmed; `""` when absent.
pub fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.trim())
}

/// The field's value when something was typed into it.
pub fn given(fields: &Fields, name: &str) -> Option<String> {
    Some(field(fields, name)).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// A query parameter that was given and not left empty.
pub fn chosen(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The lines picked in a form: every `qty:<sku>` field with more than nothing. A quantity that
/// is not a whole number is answered with its field name.
pub fn picked_lines(fields: &Fields) -> Result<Vec<ItemLine>, String> {
    let mut lines = Vec::new();
    for (name, value) in fields {
        let Some(sku) = name.strip_prefix("qty:") else { continue };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let quantity: i64 = value.parse().map_err(|_| name.clone())?;
        if quantity > 0 {
            lines.push(ItemLine {
                sku: sku.to_owned(),
                quantity,
            });
        }
    }
    Ok(lines)
}

/// A whole number typed into `name`, if any; `Err` when something else was typed.
pub fn number(fields: &Fields, name: &str) -> Result<Option<i64>, ()> {
    match field(fields, name) {
        "" => Ok(None),
        text => text.parse().map(Some).map_err(|_| ()),
    }
}

/// Reads the typed values of a form whose field names are the API's (`stock_buffer.units`),
/// collecting what cannot be read as errors of those fields.
pub struct Reader<'a> {
    fields: &'a Fields,
    check: Check,
}

impl<'a> Reader<'a> {
    pub fn new(fields: &'a Fields) -> Reader<'a> {
        Reader {
            fields,
            check: Check::new(),
        }
    }

    pub fn text(&self, name: &str) -> String {
        field(self.fields, name).to_owned()
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        given(self.fields, name)
    }

    /// A ticked checkbox.
    pub fn flag(&self, name: &str) -> bool {
        !field(self.fields, name).is_empty()
    }

    /// Every value of a field that repeats (checkboxes of one name).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    pub fn number(&mut self, name: &str) -> Option<i64> {
        let value = number(self.fields, name);
        if value.is_err() {
            self.check.fail(name, "invalid", "must be a whole number");
        }
        value.ok().flatten()
    }

    pub fn decimal(&mut self, name: &str) -> Option<f64> {
        match field(self.fields, name) {
            "" => None,
            text => {
                let value = text.parse().ok().filter(|v: &f64| v.is_finite());
                if value.is_none() {
                    self.check.fail(name, "invalid", "must be a number such as 52.52");
                }
                value
            }
        }
    }

    /// One of the API's names for a kind (`warehouse`, `allow_override` …).
    pub fn choice<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        let value = serde_json::from_value(field(self.fields, name).into()).ok();
        if value.is_none() {
            self.check.fail(name, "invalid", "choose one of the options");
        }
        value
    }

    pub fn fail(&mut self, name: &str, message: &str) {
        self.check.fail(name, "invalid", message);
    }

    /// What was read, or every field that could not be.
    pub fn finish<T>(self, read: Option<T>) -> Result<T, Invalid> {
        self.check.done()?;
        read.ok_or_else(|| Invalid::one("", "invalid", "the form is incomplete"))
    }
}

/// What `read` makes of a form, or every field it could not read.
pub fn read<T>(fields: &Fields, read: impl FnOnce(&mut Reader) -> Option<T>) -> Result<T, Invalid> {
    let mut reader = Reader::new(fields);
    let value = read(&mut reader);
    reader.finish(value)
}

/// The values a form is drawn with: what was typed when it has just failed, else what is saved.
pub struct Filled(Fields);

impl Filled {
    pub fn new(feedback: &Feedback, form: &str, saved: impl FnOnce() -> Fields) -> Filled {
        Filled(feedback.typed(form).map_or_else(saved, <[_]>::to_vec))
    }

    pub fn get(&self, name: &str) -> &str {
        field(&self.0, name)
    }

    /// Whether `name` holds `value`: a chosen option or a ticked checkbox.
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v == value)
    }
}

/// Fields from names and values.
pub fn pairs<const N: usize>(pairs: [(&str, String); N]) -> Fields {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A submitted form from its fields.
    pub fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn picked_lines_skip_empty_and_zero() {
        let fields = form(&[("qty:A", "2"), ("qty:B", ""), ("qty:C", "0"), ("reason", "x")]);
        let lines = picked_lines(&fields).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].sku.as_str(), lines[0].quantity), ("A", 2));
        assert_eq!(picked_lines(&form(&[("qty:A", "two")])), Err("qty:A".to_owned()));
    }

    #[test]
    fn fields_are_trimmed_and_numbers_checked() {
        let fields = form(&[("delta", " 5 "), ("note", "  "), ("bad", "x")]);
        assert_eq!(number(&fields, "delta"), Ok(Some(5)));
        assert_eq!(number(&fields, "missing"), Ok(None));
        assert_eq!(number(&fields, "bad"), Err(()));
        assert_eq!(given(&fields, "note"), None);
        assert_eq!(chosen(&Some(" ".into())), None);
    }

    #[test]
    fn a_reader_names_every_field_it_cannot_read() {
        let fields = form(&[
            ("kind", "store"),
            ("priority", "high"),
            ("geo.lat", "52.5"),
            ("ok", "on"),
        ]);
        let mut reader = Reader::new(&fields);
        let kind: Option<omnihub_domain::catalog::LocationKind> = reader.choice("kind");
        assert!(kind.is_some());
        assert_eq!(reader.decimal("geo.lat"), Some(52.5));
        assert_eq!(reader.number("priority"), None);
        let parity: Option<omnihub_domain::catalog::Parity> = reader.choice("parity");
        assert!(parity.is_none() && reader.flag("ok") && !reader.flag("missing"));
        let Invalid(errors) = reader.finish(Some(())).unwrap_err();
        let named: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["priority", "parity"]);
    }
}
