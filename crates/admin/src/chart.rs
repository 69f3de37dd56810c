//! Bar charts drawn by the server as SVG: no chart library, no script, readable by screen
//! readers (each bar carries its label and value as text).

/// Geometry of a horizontal bar chart, in SVG user units; it scales to its container.
const LABEL_WIDTH: i64 = 170;
const BAR_SPACE: i64 = 330;
const VALUE_WIDTH: i64 = 110;
const ROW_HEIGHT: i64 = 34;
const BAR_HEIGHT: i64 = 22;

pub struct BarChart {
    pub title: String,
    pub width: i64,
    pub height: i64,
    pub bar_x: i64,
    pub bars: Vec<Bar>,
}

pub struct Bar {
    pub label: String,
    pub value: String,
    pub y: i64,
    pub text_y: i64,
    pub width: i64,
    pub value_x: i64,
}

/// A chart of `(label, amount, amount as text)`, bars scaled to the largest amount.
pub fn bars(title: &str, rows: Vec<(String, i64, String)>) -> BarChart {
    let largest = rows.iter().map(|(_, amount, _)| *amount).max().unwrap_or(0).max(1);
    let bars = rows
        .into_iter()
        .enumerate()
        .map(|(i, (label, amount, value))| {
            let y = i as i64 * ROW_HEIGHT + 6;
            // Any amount above nothing shows at least a sliver.
            let width = (amount.max(0) * BAR_SPACE / largest).max(if amount > 0 { 2 } else { 0 });
            Bar {
                label,
                value,
                y,
                text_y: y + BAR_HEIGHT / 2 + 5,
                width,
                value_x: LABEL_WIDTH + width + 8,
            }
        })
        .collect::<Vec<_>>();
    BarChart {
        title: title.to_owned(),
        width: LABEL_WIDTH + BAR_SPACE + VALUE_WIDTH,
        height: (bars.len() as i64 * ROW_HEIGHT).max(ROW_HEIGHT) + 6,
        bar_x: LABEL_WIDTH,
        bars,
    }
}

impl BarChart {
    pub fn bar_height(&self) -> i64 {
        BAR_HEIGHT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest() {
        let chart = bars(
            "Revenue",
            vec![
                ("Web".into(), 1000, "10.00 EUR".into()),
                ("App".into(), 500, "5.00 EUR".into()),
                ("POS".into(), 1, "0.01 EUR".into()),
                ("Marketplace".into(), 0, "0.00 EUR".into()),
            ],
        );
        let widths: Vec<_> = chart.bars.iter().map(|b| b.width).collect();
        assert_eq!(widths, [BAR_SPACE, BAR_SPACE / 2, 2, 0]);
        assert_eq!(chart.bars[1].y, ROW_HEIGHT + 6);
    }
}
