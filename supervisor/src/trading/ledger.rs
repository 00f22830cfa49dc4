//! The daily notional of every principal: what its sessions' orders added up to today (UTC),
//! plus what orders announced but not yet answered have reserved.
//!
//! An intent reserves its notional if the principal's day stays within its cap; its outcome
//! then keeps it (the broker has the order, or may have it) or releases it (refused, not
//! confirmed, replayed). The day is the UTC date: at midnight UTC every total starts again
//! from zero. Pure bookkeeping: the desk owns the lock and the clock.

use std::collections::HashMap;

use rust_decimal::Decimal;

/// An announced order's reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub day: String,
    pub principal: String,
    pub amount: Decimal,
}

/// Why an intent was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the order's notional of {amount} would bring your orders today (UTC, across all your \
     sessions) to {total}, over your max_daily_notional of {cap}: {left} is left today"
)]
pub struct OverDailyCap {
    pub amount: Decimal,
    pub total: Decimal,
    pub cap: Decimal,
    pub left: Decimal,
}

/// The day's totals per principal.
#[derive(Debug, Default)]
pub struct DailyLedger {
    day: String,
    used: HashMap<String, Decimal>,
    pending: HashMap<String, Reservation>,
}

impl DailyLedger {
    /// Starts the day `day` (`YYYY-MM-DD`) afresh if it is not the ledger's day yet.
    fn roll(&mut self, day: &str) {
        if self.day != day {
            self.day = day.to_owned();
            self.used.clear();
        }
    }

    /// Adds `amount` to `principal`'s total of `day` (seeding from the journal).
    pub fn add(&mut self, day: &str, principal: &str, amount: Decimal) {
        self.roll(day);
        *self.used.entry(principal.to_owned()).or_default() += amount;
    }

    /// `principal`'s total today, reservations included.
    pub fn total(&self, day: &str, principal: &str) -> Decimal {
        if self.day != day {
            return Decimal::ZERO;
        }
        let used = self.used.get(principal).copied().unwrap_or_default();
        let pending: Decimal = self
            .pending
            .values()
            .filter(|reservation| reservation.day == day && reservation.principal == principal)
            .map(|reservation| reservation.amount)
            .sum();
        used + pending
    }

    /// Reserves `amount` for `principal` today under `intent_id`, if `cap` allows.
    pub fn reserve(
        &mut self,
        day: &str,
        principal: &str,
        intent_id: &str,
        amount: Decimal,
        cap: Option<Decimal>,
    ) -> Result<(), OverDailyCap> {
        self.roll(day);
        let total = self.total(day, principal) + amount;
        if let Some(cap) = cap
            && total > cap
        {
            let left = (cap - self.total(day, principal)).max(Decimal::ZERO);
            return Err(OverDailyCap {
                amount,
                total,
                cap,
                left,
            });
        }
        self.pending.insert(
            intent_id.to_owned(),
            Reservation {
                day: day.to_owned(),
                principal: principal.to_owned(),
                amount,
            },
        );
        Ok(())
    }

    /// Settles `intent_id`: its amount is kept in its day's total (`counts`) or released.
    /// Returns the reservation, if it was known.
    pub fn settle(&mut self, intent_id: &str, counts: bool) -> Option<Reservation> {
        let reservation = self.pending.remove(intent_id)?;
        if counts && reservation.day == self.day {
            *self.used.entry(reservation.principal.clone()).or_default() += reservation.amount;
        }
        Some(reservation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn reservations_count_until_released_and_the_cap_spans_them() {
        let mut ledger = DailyLedger::default();
        let cap = Some(d("1000"));
        ledger
            .reserve("2026-01-05", "alice", "i1", d("600"), cap)
            .unwrap();
        let refused = ledger
            .reserve("2026-01-05", "alice", "i2", d("500"), cap)
            .unwrap_err();
        assert_eq!(refused.left, d("400"));
        assert!(
            refused
                .to_string()
                .contains("over your max_daily_notional of 1000: 400 is left today")
        );
        ledger
            .reserve("2026-01-05", "bob", "i3", d("900"), cap)
            .unwrap();
        ledger.settle("i1", false).unwrap();
        ledger
            .reserve("2026-01-05", "alice", "i4", d("900"), cap)
            .unwrap();
        ledger.settle("i4", true).unwrap();
        assert_eq!(ledger.total("2026-01-05", "alice"), d("900"));
        assert!(ledger.settle("i4", true).is_none(), "settled once");
    }

    #[test]
    fn a_new_utc_day_starts_from_zero() {
        let mut ledger = DailyLedger::default();
        ledger.add("2026-01-05", "alice", d("950"));
        let cap = Some(d("1000"));
        assert!(
            ledger
                .reserve("2026-01-05", "alice", "a", d("100"), cap)
                .is_err()
        );
        ledger
            .reserve("2026-01-06", "alice", "b", d("100"), cap)
            .unwrap();
        assert_eq!(ledger.total("2026-01-06", "alice"), d("100"));
        assert_eq!(ledger.total("2026-01-05", "alice"), d("0"));
    }
}
