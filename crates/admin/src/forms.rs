//! Reading submitted forms: fields by name, empty fields as absent, and the quantity fields
//! (`qty:<sku>`) of forms that pick lines of an order.

use omnihub_domain::orders::ItemLine;

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
}
