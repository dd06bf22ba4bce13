//! Numbers as text for the report: microseconds and megabytes from raw measurements, one
//! decimal, and rows aligned into a table.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

#[expect(clippy::cast_precision_loss, reason = "nanoseconds of a benchmark fit an f64 well")]
pub(crate) fn us(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

#[expect(clippy::cast_precision_loss, reason = "bytes of a process fit an f64 well")]
pub(crate) fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Rows as an aligned table: the first column left, the others right.
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|cell| cell.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c == 0 {
                let _ = write!(line, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(line, "  {}{cell}", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(crate) fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

pub(crate) fn f1(value: f64) -> String {
    if value.is_finite() { format!("{value:.1}") } else { "n/a".to_owned() }
}
