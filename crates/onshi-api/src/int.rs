//! Integers in JSON bodies as JSON Schema counts them: `206` and `206.0` are the same integer
//! (JSON Schema 2020-12 calls any number with a zero fractional part an integer), so a client
//! that writes whole numbers as floats is not refused. Anything with a fraction, or out of
//! range, is still an error.

use serde::{Deserialize, Deserializer, de::Error as _};

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Uint(u64),
    Float(f64),
}

fn whole<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    let n: i128 = match Number::deserialize(d)? {
        Number::Int(i) => i.into(),
        Number::Uint(u) => u.into(),
        Number::Float(f) if f.fract() == 0.0 && f.abs() < 1e19 => f as i128,
        Number::Float(f) => return Err(D::Error::custom(format!("{f} is not a whole number"))),
    };
    T::try_from(n).map_err(|_| D::Error::custom(format!("{n} is out of range")))
}

/// A whole `i64`.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    whole(d)
}

/// A whole `u32`.
pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    whole(d)
}

/// A whole `u64`.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    whole(d)
}

/// A whole `u64`, or null/absent.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n = match Option::<Number>::deserialize(d)? {
        None => return Ok(None),
        Some(Number::Int(i)) => u64::try_from(i).map_err(D::Error::custom)?,
        Some(Number::Uint(u)) => u,
        Some(Number::Float(f)) if f.fract() == 0.0 && (0.0..9.2e18).contains(&f) => f as u64,
        Some(Number::Float(f)) => {
            return Err(D::Error::custom(format!(
                "{f} is not a whole number up to 2^63 - 1"
            )));
        }
    };
    // Counts are stored as signed 64-bit integers in both databases.
    if i64::try_from(n).is_err() {
        return Err(D::Error::custom(format!("{n} is over 2^63 - 1")));
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::i64")]
        n: i64,
    }

    fn n(json: &str) -> Result<i64, String> {
        serde_json::from_str::<T>(json)
            .map(|t| t.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        assert_eq!(n(r#"{"n": 206}"#), Ok(206));
        assert_eq!(n(r#"{"n": 206.0}"#), Ok(206));
        assert_eq!(n(r#"{"n": -3}"#), Ok(-3));
        assert!(n(r#"{"n": 206.5}"#).is_err());
        assert!(n(r#"{"n": "206"}"#).is_err());
        assert!(n(r#"{"n": 1e30}"#).is_err());
    }

    #[derive(serde::Deserialize)]
    struct Count {
        #[serde(default, deserialize_with = "super::opt_u64")]
        bytes: Option<u64>,
    }

    fn bytes(json: &str) -> Result<Option<u64>, String> {
        serde_json::from_str::<Count>(json)
            .map(|t| t.bytes)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_count_is_refused_past_what_the_databases_store() {
        assert_eq!(bytes(r#"{}"#), Ok(None));
        assert_eq!(
            bytes(r#"{"bytes": 9223372036854775807}"#),
            Ok(Some(i64::MAX as u64))
        );
        assert!(bytes(r#"{"bytes": 9223372036854775808}"#).is_err());
        assert!(bytes(r#"{"bytes": 18446744073709551615}"#).is_err());
        assert!(bytes(r#"{"bytes": -1}"#).is_err());
    }
}
