//! Latency samples and the percentiles the report quotes.
//!
//! Percentiles use the nearest-rank method on the sorted samples, so p99 of 20,000 samples is
//! the 19,800th fastest call — an observed latency, never an interpolation.

use std::time::Duration;

/// Latencies of one measurement, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    micros: Vec<f64>,
}

impl Samples {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            micros: Vec::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, elapsed: Duration) {
        self.micros.push(elapsed.as_secs_f64() * 1e6);
    }

    /// Samples taken so far.
    pub fn count(&self) -> usize {
        self.micros.len()
    }

    pub fn extend(&mut self, other: Samples) {
        self.micros.extend(other.micros);
    }

    /// p50, p99 and the count; `None` without samples.
    pub fn summary(&self) -> Option<Summary> {
        if self.micros.is_empty() {
            return None;
        }
        let mut sorted = self.micros.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1]
        };
        Some(Summary {
            p50: rank(50.0),
            p99: rank(99.0),
            count: sorted.len(),
        })
    }
}

/// Percentiles of one measurement, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50: f64,
    pub p99: f64,
    pub count: usize,
}

/// A latency in microseconds, printed with a unit that keeps three significant digits.
pub fn format_micros(micros: f64) -> String {
    if micros >= 10_000.0 {
        format!("{:.1} ms", micros / 1000.0)
    } else if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else if micros >= 100.0 {
        format!("{micros:.0} µs")
    } else {
        format!("{micros:.1} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Samples::default();
        for micros in 1..=100 {
            samples.push(Duration::from_micros(micros));
        }
        let summary = samples.summary().unwrap();
        assert!((summary.p50 - 50.0).abs() < 1e-6);
        assert!((summary.p99 - 99.0).abs() < 1e-6);
        assert_eq!(summary.count, 100);
        assert!(Samples::default().summary().is_none());
    }

    #[test]
    fn units_keep_three_digits() {
        assert_eq!(format_micros(12.34), "12.3 µs");
        assert_eq!(format_micros(456.0), "456 µs");
        assert_eq!(format_micros(1234.0), "1.23 ms");
        assert_eq!(format_micros(12345.0), "12.3 ms");
    }
}
