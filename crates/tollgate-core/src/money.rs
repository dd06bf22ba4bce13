//! Money as an integer count of micro-dollars, parsed once from the wire's decimal dollars.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest amount Tollgate accepts for one budget line, in whole dollars.
pub const MAX_DOLLARS: f64 = 1_000_000_000.0;

const MICROS_PER_DOLLAR: f64 = 1_000_000.0;

/// A non-negative amount of money in micro-dollars (1 USD = 1,000,000).
///
/// The wire carries dollars as a JSON number; they are rounded to the nearest micro-dollar on
/// the way in, so every later sum and comparison is exact integer arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a dollar amount was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a finite number")]
    NotFinite,
    #[error("must not be negative")]
    Negative,
    #[error("must not exceed 1000000000 dollars")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn from_micros(micros: i64) -> Option<Self> {
        (micros >= 0).then_some(Self(micros))
    }

    pub fn from_dollars(dollars: f64) -> Result<Self, MoneyError> {
        if !dollars.is_finite() {
            return Err(MoneyError::NotFinite);
        }
        if dollars < 0.0 {
            return Err(MoneyError::Negative);
        }
        if dollars > MAX_DOLLARS {
            return Err(MoneyError::TooLarge);
        }
        #[expect(clippy::cast_possible_truncation, reason = "bounded above by MAX_DOLLARS, so the product fits an i64")]
        let micros = (dollars * MICROS_PER_DOLLAR).round() as i64;
        Ok(Self(micros))
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    #[expect(clippy::cast_precision_loss, reason = "amounts are below 2^53 micro-dollars")]
    pub fn dollars(self) -> f64 {
        self.0 as f64 / MICROS_PER_DOLLAR
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dollars = f64::deserialize(d)?;
        Money::from_dollars(dollars).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_round_to_the_nearest_micro_dollar() {
        assert_eq!(Money::from_dollars(10.5).map(Money::micros), Ok(10_500_000));
        assert_eq!(Money::from_dollars(0.000_000_4).map(Money::micros), Ok(0));
        assert_eq!(Money::from_dollars(0.000_000_6).map(Money::micros), Ok(1));
    }

    #[test]
    fn negative_huge_and_non_finite_amounts_are_refused() {
        assert_eq!(Money::from_dollars(-0.01), Err(MoneyError::Negative));
        assert_eq!(Money::from_dollars(2e9), Err(MoneyError::TooLarge));
        assert_eq!(Money::from_dollars(f64::NAN), Err(MoneyError::NotFinite));
    }

    #[test]
    fn money_serialises_back_to_the_same_dollars() {
        let m = Money::from_dollars(12.34).unwrap_or_default();
        assert_eq!(serde_json::to_string(&m).unwrap_or_default(), "12.34");
    }
}
