//! How instants are written in the database and in JSON: RFC 3339 UTC with milliseconds, so that
//! text order is time order.

use jiff::Timestamp;
use jiff::civil::Time;
use serde::Serializer;

/// `2026-01-19T11:00:00.000Z`.
pub fn db_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses what [`db_time`] wrote (any RFC 3339 instant is accepted).
pub fn parse_db_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

pub(crate) fn ser_ts<S: Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_string())
}

pub(crate) fn ser_opt_ts<S: Serializer>(at: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(&at.to_string()),
        None => s.serialize_none(),
    }
}

pub(crate) fn ser_opt_hhmm<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.strftime("%H:%M").to_string()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_times_sort_as_text_in_time_order() {
        let a: Timestamp = "2026-01-19T11:00:00Z".parse().expect("instant");
        let b: Timestamp = "2026-01-19T11:00:00.5Z".parse().expect("instant");
        assert_eq!(db_time(a), "2026-01-19T11:00:00.000Z");
        assert_eq!(db_time(b), "2026-01-19T11:00:00.500Z");
        assert!(db_time(a) < db_time(b));
        assert_eq!(parse_db_time(&db_time(b)), Some(b));
    }
}
