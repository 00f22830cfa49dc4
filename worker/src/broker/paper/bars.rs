//! Bars synthesized from the paper market: the same seed gives the same bars.
//!
//! A bar's slot is a multiple of its timeframe in UTC (a day bar of crypto is a UTC day). For
//! a symbol with market hours only slots that overlap a session exist, clipped to it: a day
//! bar of an equity is its session, open to close, and minute bars stop at the close. Within
//! the clipped interval `[a, b]`, open is the mid price at `a`, close the mid price at `b`,
//! and high and low the extremes of [`SAMPLES_PER_BAR`] evenly spaced mid prices (including
//! both ends). Volume is drawn from the seed, the symbol and the bar's start, around a fixed
//! money turnover per minute. Only completed bars (ending at or before now) are returned.

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::{Decimal, RoundingStrategy};

use super::calendar::{Market, Session};
use super::market::{PaperMarket, SymbolSpec, mix, symbol_hash};
use crate::broker::model::Bar;
use crate::broker::{Bars, BarsRequest, Timeframe};

/// Prices sampled per bar for its high and low (more for long bars would cost more than it
/// shows: the octave noise moves little within a sixtieth of a bar).
const SAMPLES_PER_BAR: i64 = 60;

/// A bar's typical traded value per minute, in the quote currency: volumes then look like
/// volumes (thousands of shares of a 200-dollar stock a minute).
const TURNOVER_PER_MINUTE: i64 = 2_000_000;

/// Most sessions walked back to find bars (two years of weekdays): bounds the work of a
/// request whose range holds no trading at all.
const MAX_SESSIONS_WALKED: usize = 520;

/// The bars `request` asks for, at `now`.
pub fn bars(
    market: &PaperMarket,
    spec: &SymbolSpec,
    request: &BarsRequest,
    now: DateTime<Utc>,
) -> Bars {
    let end = request.end.map_or(now, |end| end.min(now));
    let slots = match request.start {
        Some(start) => slots_forward(spec.market, request.timeframe, start, end, request.limit),
        None => slots_backward(spec.market, request.timeframe, end, request.limit),
    };
    Bars {
        symbol: spec.symbol.clone(),
        timeframe: request.timeframe,
        bars: slots
            .into_iter()
            .map(|(from, to)| bar(market, spec, from, to))
            .collect(),
    }
}

/// Completed slots `[from, to]` overlapping the market's sessions, from `start` on.
fn slots_forward(
    market: Market,
    timeframe: Timeframe,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut slots = Vec::new();
    let mut cursor = start;
    while slots.len() < limit && cursor < end {
        let Some(session) = session_from(market, cursor) else {
            break;
        };
        for slot in session_slots(timeframe, session) {
            if slots.len() == limit || slot.1 > end {
                return slots;
            }
            if slot.0 >= start {
                slots.push(slot);
            }
        }
        cursor = session.close;
    }
    slots
}

/// The last `limit` completed slots ending at or before `end`, oldest first.
fn slots_backward(
    market: Market,
    timeframe: Timeframe,
    end: DateTime<Utc>,
    limit: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut slots = Vec::new();
    let mut cursor = end;
    for _ in 0..MAX_SESSIONS_WALKED {
        if slots.len() >= limit {
            break;
        }
        let Some(session) = session_until(market, timeframe, cursor) else {
            break;
        };
        let mut completed: Vec<_> = session_slots(timeframe, session)
            .filter(|slot| slot.1 <= end)
            .collect();
        while slots.len() < limit
            && let Some(slot) = completed.pop()
        {
            slots.push(slot);
        }
        cursor = session.open - TimeDelta::seconds(1);
        if !market.has_hours() {
            // One open-ended pseudo-session covered everything before `end`.
            break;
        }
    }
    slots.reverse();
    slots
}

/// The session in which bars from `time` on are found (crypto: everything after it).
fn session_from(market: Market, time: DateTime<Utc>) -> Option<Session> {
    if market.has_hours() {
        return market.current_or_next_session(time);
    }
    Some(Session {
        open: time,
        close: DateTime::<Utc>::MAX_UTC,
    })
}

/// The session holding the bars that end at or before `time` (crypto: a window long enough
/// for any `limit`).
fn session_until(market: Market, timeframe: Timeframe, time: DateTime<Utc>) -> Option<Session> {
    if market.has_hours() {
        return market.session_at_or_before(time);
    }
    // Bars are bounded by the tools (at most a few thousand): this window holds them all.
    // It ends on a slot boundary, so its last slot is complete rather than clipped.
    let width = timeframe.seconds();
    let boundary = time.timestamp() - time.timestamp().rem_euclid(width);
    let close = DateTime::from_timestamp(boundary, 0)?;
    let window = TimeDelta::seconds(width.saturating_mul(10_000));
    Some(Session {
        open: close - window,
        close,
    })
}

/// The slots of `session`, clipped to it, lazily (a crypto pseudo-session never ends). A day
/// bar of a market with hours is the whole session.
fn session_slots(
    timeframe: Timeframe,
    session: Session,
) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> {
    let width = timeframe.seconds();
    let open = session.open.timestamp();
    let close = session.close.timestamp();
    let first = open - open.rem_euclid(width);
    (0..)
        .map(move |index: i64| first.saturating_add(index.saturating_mul(width)))
        .take_while(move |&slot_start| slot_start < close)
        .filter_map(move |slot_start| {
            let from = DateTime::from_timestamp(slot_start.max(open), 0)?;
            let to = DateTime::from_timestamp(slot_start.saturating_add(width).min(close), 0)?;
            Some((from, to))
        })
}

/// The bar of `spec` over `[from, to]`.
fn bar(market: &PaperMarket, spec: &SymbolSpec, from: DateTime<Utc>, to: DateTime<Utc>) -> Bar {
    let seconds = (to - from).num_seconds().max(1);
    let samples = SAMPLES_PER_BAR.min(seconds);
    let prices: Vec<Decimal> = (0..=samples)
        .map(|step| market.mid_at(spec, from + TimeDelta::seconds(seconds * step / samples)))
        .collect();
    let high = prices.iter().copied().max().unwrap_or_default();
    let low = prices.iter().copied().min().unwrap_or_default();
    Bar {
        time: from,
        open: prices.first().copied().unwrap_or_default(),
        high,
        low,
        close: prices.last().copied().unwrap_or_default(),
        volume: volume(market, spec, from, seconds, prices[0]),
    }
}

/// A volume drawn from the seed: the turnover of `seconds` at `price`, times 0.5 to 1.5.
fn volume(
    market: &PaperMarket,
    spec: &SymbolSpec,
    from: DateTime<Utc>,
    seconds: i64,
    price: Decimal,
) -> Decimal {
    if price <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    // `as` reinterprets the bits: only their uniqueness matters to the hash.
    let draw = mix(market.seed() ^ symbol_hash(&spec.symbol) ^ from.timestamp() as u64) % 1_001;
    let factor = Decimal::new(500 + i64::try_from(draw).unwrap_or(0), 3);
    let turnover = Decimal::from(TURNOVER_PER_MINUTE) * Decimal::from(seconds) / Decimal::from(60);
    (turnover * factor / price)
        .round_dp_with_strategy(spec.qty_decimals, RoundingStrategy::ToZero)
        .normalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::paper::market::{DEFAULT_SEED, default_symbols};

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn market() -> PaperMarket {
        PaperMarket::new(DEFAULT_SEED, default_symbols())
    }

    fn request(symbol: &str, timeframe: Timeframe, limit: usize) -> BarsRequest {
        BarsRequest {
            symbol: symbol.into(),
            timeframe,
            limit,
            start: None,
            end: None,
        }
    }

    #[test]
    fn crypto_minute_bars_are_completed_deterministic_and_consistent() {
        let market = market();
        let spec = market.spec("ETH-USD").unwrap().clone();
        let now = at("2026-01-03T10:02:05Z");
        let bars = bars(
            &market,
            &spec,
            &request("ETH-USD", Timeframe::OneMinute, 57),
            now,
        );
        assert_eq!(bars.bars.len(), 57);
        let last = bars.bars.last().unwrap();
        assert_eq!(last.time, at("2026-01-03T10:01:00Z"));
        assert_eq!(last.close, market.mid_at(&spec, at("2026-01-03T10:02:00Z")));
        for pair in bars.bars.windows(2) {
            assert_eq!(pair[1].time - pair[0].time, TimeDelta::seconds(60));
            assert_eq!(pair[0].close, pair[1].open, "continuous around the clock");
        }
        for bar in &bars.bars {
            assert!(bar.low <= bar.open.min(bar.close) && bar.high >= bar.open.max(bar.close));
            assert!(bar.volume > Decimal::ZERO);
        }
        let again = super::bars(
            &market,
            &spec,
            &request("ETH-USD", Timeframe::OneMinute, 57),
            now,
        );
        assert_eq!(bars, again);
    }

    #[test]
    fn equity_bars_exist_only_in_sessions() {
        let market = market();
        let spec = market.spec("AAPL").unwrap().clone();
        // Monday 2026-01-05 before the open: the last bars are Friday's.
        let now = at("2026-01-05T12:00:00Z");
        let day = bars(&market, &spec, &request("AAPL", Timeframe::OneDay, 2), now);
        let times: Vec<_> = day.bars.iter().map(|bar| bar.time).collect();
        assert_eq!(
            times,
            [at("2026-01-01T14:30:00Z"), at("2026-01-02T14:30:00Z")]
        );
        assert_eq!(
            day.bars[1].close,
            market.mid_at(&spec, at("2026-01-02T21:00:00Z")),
            "a day bar closes at the session's close"
        );
        let hours = bars(&market, &spec, &request("AAPL", Timeframe::OneHour, 7), now);
        let first = hours.bars.first().unwrap().time;
        assert_eq!(
            first,
            at("2026-01-02T14:30:00Z"),
            "the first hour bar starts at the open"
        );
        assert_eq!(hours.bars[1].time, at("2026-01-02T15:00:00Z"));
        assert_eq!(hours.bars.last().unwrap().time, at("2026-01-02T20:00:00Z"));
        assert_eq!(hours.bars.len(), 7, "09:30, then 10:00 to 15:00");
    }

    #[test]
    fn a_start_gives_bars_from_it_on() {
        let market = market();
        let spec = market.spec("AAPL").unwrap().clone();
        let mut from_friday = request("AAPL", Timeframe::FifteenMinutes, 3);
        from_friday.start = Some(at("2026-01-02T20:30:00Z"));
        let bars = bars(&market, &spec, &from_friday, at("2026-01-06T00:00:00Z"));
        let times: Vec<_> = bars.bars.iter().map(|bar| bar.time).collect();
        assert_eq!(
            times,
            [
                at("2026-01-02T20:30:00Z"),
                at("2026-01-02T20:45:00Z"),
                at("2026-01-05T14:30:00Z")
            ],
            "over the weekend to Monday's open"
        );
    }
}
