//! Reading the crate's metrics as Prometheus's text format shows them.

/// The value of the sample `series` (`name` or `name{labels}`, exactly as
/// the exporter writes it) in Prometheus text, if it is there.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
