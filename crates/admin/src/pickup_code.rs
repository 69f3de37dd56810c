//! The pick-up code: a QR code of the order number, which the desk's camera (or a hand
//! scanner, which types what it reads) turns back into the number to look the order up.

use qrcode::QrCode;
use qrcode::render::svg;

/// The code as inline SVG; `None` only if the number could not be encoded.
pub fn svg(number: &str) -> Option<String> {
    let code = QrCode::new(number.as_bytes()).ok()?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(160, 160)
        .quiet_zone(true)
        .build();
    // Inline in HTML: without the XML declaration, and named for screen readers.
    let start = image.find("<svg")?;
    let label = format!(r#"<svg role="img" aria-label="Pick-up code of order {number}""#);
    Some(image[start..].replacen("<svg", &label, 1))
}

#[cfg(test)]
mod tests {
    use super::svg;

    #[test]
    fn the_code_is_inline_svg_named_for_its_order() {
        let code = svg("#1001").expect("an order number always fits a QR code");
        assert!(code.starts_with(r#"<svg role="img" aria-label="Pick-up code of order #1001""#));
        assert!(code.contains("viewBox"));
        assert!(code.ends_with("</svg>"));
        assert_ne!(code, svg("#1002").unwrap(), "each number has its own code");
    }
}
