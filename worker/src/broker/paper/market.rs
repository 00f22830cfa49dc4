//! The paper broker's simulated market: a deterministic price for every symbol at every second.
//!
//! A symbol's mid price is its base price moved by the sum of a few "octaves" of value noise:
//! for each octave (from seconds to a day long) a pseudo-random offset is drawn at every knot
//! (a multiple of the octave's period) by hashing the seed, the symbol and the knot number,
//! and the offset between two knots is interpolated linearly. The short octaves make the
//! price jitter, the long ones make it wander, like a random walk, but within a few percent
//! of the base price, and — unlike a walk — the price at any second is computed directly,
//! without replaying history. The same seed and the same second always give the same price.
//!
//! All of it is integer and decimal arithmetic: no binary floats touch a price.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::calendar::Market;
use crate::broker::{Quote, SymbolInfo};

/// The seed of a session's market when none is configured; any fixed value would do.
pub const DEFAULT_SEED: u64 = 0x0B01_C4EA_D5EE_D001;

/// Prices change once a second; a quote within the same second is the same quote.
pub const PRICE_STEP_SECONDS: i64 = 1;

/// The octaves of noise as (period in seconds, largest offset in parts per million). Together
/// they keep a price within about ±5% of its base.
const OCTAVES: [(i64, i64); 5] = [
    (20, 400),
    (180, 1_500),
    (1_200, 5_000),
    (7_200, 12_000),
    (86_400, 30_000),
];

/// Parts per million, the unit of the octave offsets.
const PPM: i64 = 1_000_000;

/// Where the paper market gets the time: the system clock, or a test's hand-moved one.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// One tradable symbol of the paper market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolSpec {
    pub symbol: String,
    pub name: String,
    /// The market whose hours it trades in.
    pub market: Market,
    /// The currency prices are quoted in (informational: see `paper` on settlement).
    pub currency: String,
    /// The price the market moves around.
    pub base_price: Decimal,
    /// Decimal places of a price; one unit in the last place is the tick.
    pub price_decimals: u32,
    /// Decimal places a quantity may have in any order (0 for whole shares).
    pub qty_decimals: u32,
    /// Decimal places of a fractional quantity, for symbols that take fractional orders
    /// (`None`: whole quantities only, and no notional orders).
    pub fractional_decimals: Option<u32>,
    /// The smallest quantity an order may have.
    pub min_qty: Decimal,
    /// Distance between bid and ask, in basis points of the mid price (at least one tick).
    pub spread_bps: u32,
}

/// The smallest notional (money) amount of a notional or fractional order, in the account's
/// currency: a dollar, as on Alpaca.
pub const MIN_FRACTIONAL_NOTIONAL: Decimal = Decimal::from_parts(100, 0, 0, false, 2);

/// Decimal places of a fractional share of a US equity (Alpaca takes nine; six is plenty for
/// a simulation and keeps amounts readable).
pub const FRACTIONAL_SHARE_DECIMALS: u32 = 6;

/// The default symbols: crypto pairs, US equities and Indian (NSE) equities, as (symbol,
/// name, market, currency, base price in hundredths, quantity decimals, minimum quantity as
/// (mantissa, scale), spread in basis points).
#[allow(
    clippy::type_complexity,
    reason = "one table row; the columns are named above"
)]
const DEFAULT_SYMBOLS: [(&str, &str, Market, &str, i64, u32, (i64, u32), u32); 11] = [
    (
        "BTC-USD",
        "Bitcoin",
        Market::Crypto,
        "USD",
        6_500_000,
        8,
        (1, 4),
        4,
    ),
    (
        "ETH-USD",
        "Ether",
        Market::Crypto,
        "USD",
        320_000,
        8,
        (1, 3),
        5,
    ),
    (
        "SOL-USD",
        "Solana",
        Market::Crypto,
        "USD",
        15_000,
        6,
        (1, 2),
        8,
    ),
    (
        "AAPL",
        "Apple Inc.",
        Market::UsEquity,
        "USD",
        19_000,
        0,
        (1, 0),
        2,
    ),
    (
        "MSFT",
        "Microsoft Corporation",
        Market::UsEquity,
        "USD",
        42_000,
        0,
        (1, 0),
        2,
    ),
    (
        "NVDA",
        "NVIDIA Corporation",
        Market::UsEquity,
        "USD",
        12_000,
        0,
        (1, 0),
        3,
    ),
    (
        "AMZN",
        "Amazon.com, Inc.",
        Market::UsEquity,
        "USD",
        18_500,
        0,
        (1, 0),
        2,
    ),
    (
        "GOOGL",
        "Alphabet Inc. Class A",
        Market::UsEquity,
        "USD",
        17_000,
        0,
        (1, 0),
        2,
    ),
    (
        "RELIANCE.NS",
        "Reliance Industries",
        Market::NseEquity,
        "INR",
        290_000,
        0,
        (1, 0),
        5,
    ),
    (
        "TCS.NS",
        "Tata Consultancy Services",
        Market::NseEquity,
        "INR",
        390_000,
        0,
        (1, 0),
        5,
    ),
    (
        "INFY.NS",
        "Infosys",
        Market::NseEquity,
        "INR",
        150_000,
        0,
        (1, 0),
        5,
    ),
];

/// The symbols a paper market trades unless configured otherwise.
pub fn default_symbols() -> Vec<SymbolSpec> {
    DEFAULT_SYMBOLS
        .iter()
        .map(
            |&(symbol, name, market, currency, hundredths, qty_decimals, min_qty, spread_bps)| {
                SymbolSpec {
                    symbol: symbol.to_owned(),
                    name: name.to_owned(),
                    market,
                    currency: currency.to_owned(),
                    base_price: Decimal::new(hundredths, 2),
                    price_decimals: 2,
                    qty_decimals,
                    fractional_decimals: match market {
                        Market::Crypto => Some(qty_decimals),
                        Market::UsEquity => Some(FRACTIONAL_SHARE_DECIMALS),
                        Market::NseEquity => None,
                    },
                    min_qty: Decimal::new(min_qty.0, min_qty.1),
                    spread_bps,
                }
            },
        )
        .collect()
}

impl SymbolSpec {
    /// Whether fractional quantities and notional orders are accepted.
    pub fn fractionable(&self) -> bool {
        self.fractional_decimals.is_some()
    }

    /// The finest quantity any order of this symbol may have, in decimal places.
    pub fn finest_qty_decimals(&self) -> u32 {
        self.fractional_decimals.unwrap_or(self.qty_decimals)
    }

    /// What `symbols` reports about this symbol.
    pub fn info(&self) -> SymbolInfo {
        let fractionable = self.fractionable();
        SymbolInfo {
            symbol: self.symbol.clone(),
            name: self.name.clone(),
            market: self.market.name().to_owned(),
            currency: self.currency.clone(),
            tradable: true,
            price_increment: Decimal::new(1, self.price_decimals),
            qty_increment: Decimal::new(1, self.finest_qty_decimals()),
            fractionable,
            min_qty: if fractionable && self.market == Market::UsEquity {
                Decimal::new(1, FRACTIONAL_SHARE_DECIMALS)
            } else {
                self.min_qty
            },
            min_notional: fractionable.then_some(MIN_FRACTIONAL_NOTIONAL),
        }
    }
}

/// A seeded simulated market.
#[derive(Debug, Clone)]
pub struct PaperMarket {
    seed: u64,
    symbols: BTreeMap<String, SymbolSpec>,
}

impl PaperMarket {
    pub fn new(seed: u64, symbols: Vec<SymbolSpec>) -> Self {
        let symbols = symbols
            .into_iter()
            .map(|spec| (spec.symbol.clone(), spec))
            .collect();
        Self { seed, symbols }
    }

    /// The symbol named `symbol`, ignoring case (`btc-usd` is `BTC-USD`).
    pub fn spec(&self, symbol: &str) -> Option<&SymbolSpec> {
        self.symbols.get(&symbol.trim().to_ascii_uppercase())
    }

    /// Every symbol, in alphabetical order.
    pub fn specs(&self) -> impl Iterator<Item = &SymbolSpec> {
        self.symbols.values()
    }

    /// The seed, for anything else that must be deterministic per market.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The traded symbols, comma-separated, for error messages.
    pub fn symbol_list(&self) -> String {
        self.symbols
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The mid price of `spec` at `time`, rounded to its tick.
    pub fn mid_at(&self, spec: &SymbolSpec, time: DateTime<Utc>) -> Decimal {
        let step = time.timestamp().div_euclid(PRICE_STEP_SECONDS);
        let offset_ppm = self.offset_ppm(symbol_hash(&spec.symbol), step);
        let factor = Decimal::from(PPM + offset_ppm) / Decimal::from(PPM);
        (spec.base_price * factor).round_dp(spec.price_decimals)
    }

    /// Bid, ask and last (the mid) of `spec` at `time`.
    pub fn quote_at(&self, spec: &SymbolSpec, time: DateTime<Utc>) -> Quote {
        let mid = self.mid_at(spec, time);
        let tick = Decimal::new(1, spec.price_decimals);
        let half_spread = (mid * Decimal::from(spec.spread_bps) / Decimal::from(20_000))
            .round_dp(spec.price_decimals)
            .max(tick);
        Quote {
            symbol: spec.symbol.clone(),
            bid: mid - half_spread,
            ask: mid + half_spread,
            last: mid,
            currency: spec.currency.clone(),
            time,
        }
    }

    /// The summed octave offsets, in parts per million, at price step `step`.
    fn offset_ppm(&self, symbol_hash: u64, step: i64) -> i64 {
        let mut total = 0;
        for (octave, &(period, amplitude)) in (0u64..).zip(OCTAVES.iter()) {
            let knot = step.div_euclid(period);
            let into = step.rem_euclid(period);
            let start = self.knot_offset(symbol_hash, octave, knot, amplitude);
            let end = self.knot_offset(symbol_hash, octave, knot + 1, amplitude);
            total += start + (end - start) * into / period;
        }
        total
    }

    /// A pseudo-random offset in `-amplitude..=amplitude` for one knot of one octave.
    fn knot_offset(&self, symbol_hash: u64, octave: u64, knot: i64, amplitude: i64) -> i64 {
        // `as` reinterprets the knot's bits: only their uniqueness matters to the hash.
        let hash = mix(mix(mix(self.seed ^ symbol_hash) ^ octave) ^ knot as u64);
        let span = (2 * amplitude + 1).unsigned_abs();
        i64::try_from(hash % span).unwrap_or(0) - amplitude
    }
}

/// SplitMix64's finaliser: spreads every input bit over the whole output.
pub fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a of the symbol: stable across builds, unlike `std`'s hasher.
pub fn symbol_hash(symbol: &str) -> u64 {
    symbol.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
    })
}

#[cfg(test)]
pub mod test_clock {
    //! A clock tests move by hand.

    use std::sync::Mutex;

    use chrono::{DateTime, TimeDelta, Utc};

    use super::Clock;

    pub struct ManualClock {
        now: Mutex<DateTime<Utc>>,
    }

    impl ManualClock {
        pub fn at(unix_seconds: i64) -> Self {
            let now = DateTime::from_timestamp(unix_seconds, 0).expect("a representable time");
            Self {
                now: Mutex::new(now),
            }
        }

        pub fn advance(&self, seconds: i64) {
            *self.now.lock().unwrap() += TimeDelta::seconds(seconds);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.now.lock().unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed moment: 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn market(seed: u64) -> PaperMarket {
        PaperMarket::new(seed, default_symbols())
    }

    #[test]
    fn same_seed_and_time_give_the_same_price() {
        let (first, second) = (market(DEFAULT_SEED), market(DEFAULT_SEED));
        for spec in default_symbols() {
            assert_eq!(
                first.quote_at(&spec, at(T0)),
                second.quote_at(&spec, at(T0))
            );
        }
    }

    #[test]
    fn prices_are_pinned_across_builds() {
        // Golden values: a change here changes every seeded market, so make it on purpose.
        let market = market(DEFAULT_SEED);
        let quote = market.quote_at(market.spec("BTC-USD").unwrap(), at(T0));
        let prices = [quote.bid, quote.last, quote.ask].map(|price| price.to_string());
        assert_eq!(prices, ["64015.11", "64027.92", "64040.73"]);
    }

    #[test]
    fn prices_move_with_time_and_differ_by_seed() {
        let spec = market(DEFAULT_SEED).spec("BTC-USD").unwrap().clone();
        let prices: Vec<Decimal> = (0..60)
            .map(|second| market(DEFAULT_SEED).mid_at(&spec, at(T0 + second)))
            .collect();
        assert!(prices.windows(2).filter(|pair| pair[0] != pair[1]).count() > 30);
        assert_ne!(
            market(1).mid_at(&spec, at(T0)),
            market(2).mid_at(&spec, at(T0))
        );
    }

    #[test]
    fn prices_stay_near_the_base_with_a_spread_of_at_least_a_tick() {
        let market = market(DEFAULT_SEED);
        for spec in default_symbols() {
            for hour in 0..48 {
                let quote = market.quote_at(&spec, at(T0 + hour * 3_600 + 17));
                let distance = (quote.last - spec.base_price).abs() / spec.base_price;
                assert!(
                    distance < Decimal::new(5, 2),
                    "{} moved {distance}",
                    spec.symbol
                );
                assert!(quote.bid < quote.last && quote.last < quote.ask);
                assert_eq!(quote.ask.scale(), 2);
            }
        }
    }

    #[test]
    fn symbols_are_found_in_any_case() {
        let market = market(DEFAULT_SEED);
        assert_eq!(market.spec(" reliance.ns ").unwrap().currency, "INR");
        assert!(market.spec("NOPE").is_none());
        assert!(market.symbol_list().starts_with("AAPL, AMZN, BTC-USD"));
    }
}
