//! When the paper markets are open: US equities on New York hours, NSE equities on Mumbai
//! hours, crypto around the clock.
//!
//! A session is one trading day's regular hours, `[open, close)` in UTC: US equities 09:30 to
//! 16:00 America/New_York (UTC−5, or UTC−4 from the second Sunday of March to the first
//! Sunday of November), NSE equities 09:15 to 15:30 Asia/Kolkata (UTC+5:30, no daylight
//! saving), Monday to Friday. Exchange holidays and extended hours are not simulated: the
//! paper market is open every weekday. All of it is computed, so the answer for any instant
//! is the same on every machine.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};

use crate::broker::MarketClock;

/// How far ahead a session is looked for: a week always holds a weekday.
const SEARCH_DAYS: i64 = 8;

/// A market with its own hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Market {
    UsEquity,
    NseEquity,
    Crypto,
}

/// One session's regular hours, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub open: DateTime<Utc>,
    pub close: DateTime<Utc>,
}

impl Market {
    /// Every paper market, in the order `market_clock` lists them.
    pub const ALL: [Market; 3] = [Market::UsEquity, Market::Crypto, Market::NseEquity];

    /// The name clients use, e.g. `us_equity`.
    pub fn name(self) -> &'static str {
        match self {
            Market::UsEquity => "us_equity",
            Market::NseEquity => "nse_equity",
            Market::Crypto => "crypto",
        }
    }

    pub fn from_name(name: &str) -> Option<Market> {
        Market::ALL
            .into_iter()
            .find(|market| market.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether the market ever closes.
    pub fn has_hours(self) -> bool {
        self != Market::Crypto
    }

    /// The session of the local trading date `date`, if it is a trading day.
    fn session_on(self, date: NaiveDate) -> Option<Session> {
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return None;
        }
        let (open, close, utc_offset_minutes) = match self {
            Market::UsEquity => {
                let offset = if us_daylight_saving(date) { -240 } else { -300 };
                ((9, 30), (16, 0), offset)
            }
            Market::NseEquity => ((9, 15), (15, 30), 330),
            Market::Crypto => return None,
        };
        let at = |(hour, minute): (u32, u32)| {
            let local = date.and_time(NaiveTime::from_hms_opt(hour, minute, 0)?);
            Some(local.and_utc() - TimeDelta::minutes(utc_offset_minutes))
        };
        Some(Session {
            open: at(open)?,
            close: at(close)?,
        })
    }

    /// The local trading date of `time` (US dates roll over a few hours after UTC's; NSE's
    /// before). Close enough for finding sessions: no session spans local midnight.
    fn local_date(self, time: DateTime<Utc>) -> NaiveDate {
        let offset = match self {
            Market::UsEquity => -300,
            Market::NseEquity => 330,
            Market::Crypto => 0,
        };
        (time + TimeDelta::minutes(offset)).date_naive()
    }

    /// Whether the market is open at `time`.
    pub fn is_open(self, time: DateTime<Utc>) -> bool {
        if !self.has_hours() {
            return true;
        }
        self.session_on(self.local_date(time))
            .is_some_and(|session| session.open <= time && time < session.close)
    }

    /// The session in progress at `time`, or the next one to start after it.
    pub fn current_or_next_session(self, time: DateTime<Utc>) -> Option<Session> {
        let today = self.local_date(time);
        (0..SEARCH_DAYS)
            .filter_map(|days| self.session_on(today + Duration::days(days)))
            .find(|session| time < session.close)
    }

    /// The latest session that started at or before `time` (possibly still open).
    pub fn session_at_or_before(self, time: DateTime<Utc>) -> Option<Session> {
        let today = self.local_date(time);
        (0..SEARCH_DAYS)
            .filter_map(|days| self.session_on(today - Duration::days(days)))
            .find(|session| session.open <= time)
    }

    /// The first instant at or after `time` at which the market is open.
    pub fn next_open_instant(self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.has_hours() {
            return Some(time);
        }
        let session = self.current_or_next_session(time)?;
        Some(session.open.max(time))
    }

    /// The latest instant in `[from, to]` at which the market is open: `to` itself if it is
    /// open then, else the close of the last session that ended after `from`.
    pub fn last_open_instant(
        self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if to < from {
            return None;
        }
        if self.is_open(to) {
            return Some(to);
        }
        let session = self.session_at_or_before(to)?;
        (session.close > from).then_some(session.close.min(to))
    }

    /// `market_clock` for this market at `now`.
    pub fn clock(self, now: DateTime<Utc>) -> MarketClock {
        if !self.has_hours() {
            return MarketClock {
                market: self.name().to_owned(),
                is_open: true,
                time: now,
                next_open: None,
                next_close: None,
            };
        }
        let session = self.current_or_next_session(now);
        let is_open = self.is_open(now);
        let next_open = if is_open {
            self.current_or_next_session(session.map_or(now, |session| session.close))
                .map(|next| next.open)
        } else {
            session.map(|session| session.open)
        };
        MarketClock {
            market: self.name().to_owned(),
            is_open,
            time: now,
            next_open,
            next_close: session.map(|session| session.close),
        }
    }
}

/// Whether New York keeps daylight saving time on `date`: from the second Sunday of March to
/// the first Sunday of November (the switch at 02:00 local never falls inside a session).
fn us_daylight_saving(date: NaiveDate) -> bool {
    let year = date.year();
    let (Some(start), Some(end)) = (
        NaiveDate::from_weekday_of_month_opt(year, 3, Weekday::Sun, 2),
        NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Sun, 1),
    ) else {
        return false;
    };
    start <= date && date < end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn us_hours_follow_new_york_daylight_saving() {
        // Friday 2026-01-02, winter: 14:30 to 21:00 UTC.
        let winter = Market::UsEquity.current_or_next_session(at("2026-01-02T12:00:00Z"));
        assert_eq!(
            winter,
            Some(Session {
                open: at("2026-01-02T14:30:00Z"),
                close: at("2026-01-02T21:00:00Z")
            })
        );
        // Monday 2026-07-06, summer: 13:30 to 20:00 UTC.
        let summer = Market::UsEquity
            .current_or_next_session(at("2026-07-06T13:30:00Z"))
            .unwrap();
        assert_eq!(summer.open, at("2026-07-06T13:30:00Z"));
        assert!(Market::UsEquity.is_open(at("2026-07-06T19:59:59Z")));
        assert!(!Market::UsEquity.is_open(at("2026-07-06T20:00:00Z")));
        // 2026's switches: 8 March and 1 November.
        assert!(!us_daylight_saving(
            NaiveDate::from_ymd_opt(2026, 3, 7).unwrap()
        ));
        assert!(us_daylight_saving(
            NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
        ));
        assert!(!us_daylight_saving(
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        ));
    }

    #[test]
    fn weekends_are_closed_and_the_clock_points_to_monday() {
        let saturday = at("2026-01-03T15:00:00Z");
        assert!(!Market::UsEquity.is_open(saturday));
        let clock = Market::UsEquity.clock(saturday);
        assert!(!clock.is_open);
        assert_eq!(clock.next_open, Some(at("2026-01-05T14:30:00Z")));
        assert_eq!(clock.next_close, Some(at("2026-01-05T21:00:00Z")));
        let open = Market::UsEquity.clock(at("2026-01-05T15:00:00Z"));
        assert!(open.is_open);
        assert_eq!(open.next_close, Some(at("2026-01-05T21:00:00Z")));
        assert_eq!(open.next_open, Some(at("2026-01-06T14:30:00Z")));
    }

    #[test]
    fn nse_keeps_mumbai_hours_and_crypto_never_closes() {
        let session = Market::NseEquity
            .current_or_next_session(at("2026-01-05T00:00:00Z"))
            .unwrap();
        assert_eq!(session.open, at("2026-01-05T03:45:00Z"));
        assert_eq!(session.close, at("2026-01-05T10:00:00Z"));
        assert!(Market::Crypto.is_open(at("2026-01-03T03:00:00Z")));
        let clock = Market::Crypto.clock(at("2026-01-03T03:00:00Z"));
        assert!(clock.is_open && clock.next_open.is_none() && clock.next_close.is_none());
    }

    #[test]
    fn the_last_open_instant_is_the_close_when_the_market_has_closed_since() {
        let us = Market::UsEquity;
        let placed = at("2026-01-05T15:00:00Z");
        assert_eq!(
            us.last_open_instant(placed, at("2026-01-05T23:00:00Z")),
            Some(at("2026-01-05T21:00:00Z"))
        );
        assert_eq!(
            us.last_open_instant(placed, at("2026-01-05T16:00:00Z")),
            Some(at("2026-01-05T16:00:00Z"))
        );
        // Placed on Saturday, touched on Sunday: never open in between.
        assert_eq!(
            us.last_open_instant(at("2026-01-03T15:00:00Z"), at("2026-01-04T15:00:00Z")),
            None
        );
        assert_eq!(
            us.next_open_instant(at("2026-01-03T15:00:00Z")),
            Some(at("2026-01-05T14:30:00Z"))
        );
    }
}
