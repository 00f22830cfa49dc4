//! Technical indicators (RSI, SMA, EMA) over a price series (the closes of a broker's bars).
//!
//! The functions are pure and exact in decimal arithmetic (rounded only where a division
//! runs past 28 significant digits). Their definitions, which
//! `worker/tests/reference_indicators.py` re-implements independently for the tests:
//! - SMA(n): the mean of the last n prices.
//! - EMA(n): α = 2 / (n + 1), seeded with the SMA of the first n prices, then
//!   `ema += α × (price − ema)` for each later price.
//! - RSI(n), with Wilder's smoothing: the first average gain and loss are the means of the
//!   first n price changes; each later change updates them as `(avg × (n − 1) + x) / n`.
//!   RSI = 100 − 100 / (1 + gain / loss); 100 with no losses, 50 with no moves at all.

use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::BrokerError;

/// Longest period accepted: a hundred bars (401 closes for RSI's history) stays well within
/// what one `bars` request returns.
pub const MAX_INDICATOR_PERIOD: u32 = 100;

/// EMA and RSI remember all their history with fading weight; over four periods of history
/// the seed's weight has faded to well under 1%, so that is how much they are given.
pub const SMOOTHING_HISTORY_FACTOR: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorKind {
    /// Relative strength index with Wilder's smoothing, 0 to 100.
    Rsi,
    /// Simple moving average.
    Sma,
    /// Exponential moving average.
    Ema,
}

impl IndicatorKind {
    /// How many prices this indicator uses at `period`, after checking the period.
    pub fn prices_needed(self, period: u32) -> Result<usize, BrokerError> {
        if period == 0 || period > MAX_INDICATOR_PERIOD {
            return Err(BrokerError::InvalidPeriod {
                period,
                max: MAX_INDICATOR_PERIOD,
            });
        }
        let period = period as usize;
        Ok(match self {
            IndicatorKind::Sma => period,
            IndicatorKind::Ema => period * SMOOTHING_HISTORY_FACTOR,
            // One more: n changes need n + 1 prices.
            IndicatorKind::Rsi => period * SMOOTHING_HISTORY_FACTOR + 1,
        })
    }

    pub fn compute(self, prices: &[Decimal], period: usize) -> Result<Decimal, BrokerError> {
        match self {
            IndicatorKind::Rsi => rsi(prices, period),
            IndicatorKind::Sma => sma(prices, period),
            IndicatorKind::Ema => ema(prices, period),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            IndicatorKind::Rsi => "RSI",
            IndicatorKind::Sma => "SMA",
            IndicatorKind::Ema => "EMA",
        }
    }
}

fn check_length(prices: &[Decimal], period: usize, needed: usize) -> Result<(), BrokerError> {
    if period == 0 {
        return Err(BrokerError::InvalidPeriod {
            period: 0,
            max: MAX_INDICATOR_PERIOD,
        });
    }
    if prices.len() < needed {
        return Err(BrokerError::NotEnoughPrices {
            needed,
            got: prices.len(),
        });
    }
    Ok(())
}

fn mean(values: &[Decimal]) -> Decimal {
    values.iter().sum::<Decimal>() / Decimal::from(values.len())
}

/// Simple moving average of the last `period` prices.
pub fn sma(prices: &[Decimal], period: usize) -> Result<Decimal, BrokerError> {
    check_length(prices, period, period)?;
    Ok(mean(&prices[prices.len() - period..]))
}

/// Exponential moving average over all of `prices`, seeded with the SMA of the first `period`.
pub fn ema(prices: &[Decimal], period: usize) -> Result<Decimal, BrokerError> {
    check_length(prices, period, period)?;
    let alpha = Decimal::TWO / Decimal::from(period + 1);
    let seed = mean(&prices[..period]);
    Ok(prices[period..]
        .iter()
        .fold(seed, |ema, &price| ema + alpha * (price - ema)))
}

/// Relative strength index over all of `prices`, with Wilder's smoothing.
pub fn rsi(prices: &[Decimal], period: usize) -> Result<Decimal, BrokerError> {
    check_length(prices, period, period + 1)?;
    let changes: Vec<Decimal> = prices.windows(2).map(|pair| pair[1] - pair[0]).collect();
    let gain = |change: &Decimal| (*change).max(Decimal::ZERO);
    let loss = |change: &Decimal| (-*change).max(Decimal::ZERO);
    let (first, rest) = changes.split_at(period);
    let mut avg_gain = mean(&first.iter().map(gain).collect::<Vec<_>>());
    let mut avg_loss = mean(&first.iter().map(loss).collect::<Vec<_>>());
    let n = Decimal::from(period);
    for change in rest {
        avg_gain = (avg_gain * (n - Decimal::ONE) + gain(change)) / n;
        avg_loss = (avg_loss * (n - Decimal::ONE) + loss(change)) / n;
    }
    Ok(match (avg_gain.is_zero(), avg_loss.is_zero()) {
        (true, true) => Decimal::from(50),
        (false, true) => Decimal::ONE_HUNDRED,
        _ => Decimal::ONE_HUNDRED - Decimal::ONE_HUNDRED / (Decimal::ONE + avg_gain / avg_loss),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed series of `worker/tests/reference_indicators.py`.
    const PRICES: [&str; 33] = [
        "44.34", "44.09", "44.15", "43.61", "44.33", "44.83", "45.10", "45.42", "45.84", "46.08",
        "45.89", "46.03", "45.61", "46.28", "46.28", "46.00", "46.03", "46.41", "46.22", "45.64",
        "46.21", "46.25", "45.71", "46.45", "45.78", "45.35", "44.03", "44.18", "44.22", "44.57",
        "43.42", "42.66", "43.13",
    ];

    /// (kind, period, value) as printed by `python3 worker/tests/reference_indicators.py`.
    const REFERENCE: [(IndicatorKind, usize, &str); 7] = [
        (IndicatorKind::Sma, 5, "43.599999999999994"),
        (IndicatorKind::Sma, 10, "44.379"),
        (IndicatorKind::Sma, 33, "45.155757575757576"),
        (IndicatorKind::Ema, 5, "43.511078471081625"),
        (IndicatorKind::Ema, 10, "44.11929901522181"),
        (IndicatorKind::Rsi, 5, "30.74773195921921"),
        (IndicatorKind::Rsi, 14, "37.788771982057824"),
    ];

    /// Room for the reference's binary floating point, far below any price tick.
    const TOLERANCE: &str = "0.000000001";

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn series(texts: &[&str]) -> Vec<Decimal> {
        texts.iter().map(|text| d(text)).collect()
    }

    #[test]
    fn indicators_agree_with_the_python_reference() {
        let prices = series(&PRICES);
        for (kind, period, expected) in REFERENCE {
            let value = kind.compute(&prices, period).unwrap();
            let difference = (value - d(expected)).abs();
            assert!(
                difference < d(TOLERANCE),
                "{kind:?}({period}) = {value}, expected {expected}"
            );
        }
    }

    #[test]
    fn the_first_rsi_of_the_sample_matches_its_published_value() {
        let value = rsi(&series(&PRICES[..15]), 14).unwrap();
        assert_eq!(value.round_dp(2), d("70.46"));
    }

    #[test]
    fn rsi_edges_are_defined() {
        assert_eq!(rsi(&series(&["5", "5", "5"]), 2).unwrap(), d("50"));
        assert_eq!(rsi(&series(&["1", "2", "3"]), 2).unwrap(), d("100"));
        assert_eq!(rsi(&series(&["3", "2", "1"]), 2).unwrap(), d("0"));
    }

    #[test]
    fn short_series_and_bad_periods_are_refused() {
        let prices = series(&["1", "2"]);
        assert_eq!(
            rsi(&prices, 2),
            Err(BrokerError::NotEnoughPrices { needed: 3, got: 2 })
        );
        assert!(matches!(
            sma(&prices, 0),
            Err(BrokerError::InvalidPeriod { .. })
        ));
        assert!(
            IndicatorKind::Ema
                .prices_needed(MAX_INDICATOR_PERIOD + 1)
                .is_err()
        );
        assert_eq!(IndicatorKind::Rsi.prices_needed(14), Ok(57));
    }
}
