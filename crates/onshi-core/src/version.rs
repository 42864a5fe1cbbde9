//! Application versions, ordered so that rollback can be refused.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "version {0:?} is empty or has an empty part: expected numbers separated by dots, like 1.8.2"
    )]
    Empty(String),
    #[error("version {0:?} has more than 4 parts")]
    TooManyParts(String),
    #[error("version {0:?} has a part that is not a number from 0 to 4294967295")]
    NotANumber(String),
}

/// A dotted numeric version such as `1.8.2` or `2026.1.0.3` (1 to 4 parts). Missing parts count
/// as 0, so `1.8` and `1.8.0` are the same version; the text is kept as written.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version {
    parts: [u32; 4],
    len: u8,
}

impl Version {
    /// Parses `1.8.2`: 1–4 parts, each a decimal number without sign or spaces.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let mut parts = [0u32; 4];
        let mut len = 0u8;
        for part in s.split('.') {
            if part.is_empty() {
                return Err(VersionError::Empty(s.to_owned()));
            }
            if usize::from(len) == parts.len() {
                return Err(VersionError::TooManyParts(s.to_owned()));
            }
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::NotANumber(s.to_owned()));
            }
            parts[usize::from(len)] = part
                .parse()
                .map_err(|_| VersionError::NotANumber(s.to_owned()))?;
            len += 1;
        }
        Ok(Self { parts, len })
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.parts[..usize::from(self.len)].iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Version {
    type Error = VersionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Version> for String {
    fn from(v: Version) -> Self {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("valid version")
    }

    #[test]
    fn versions_order_numerically_not_as_text() {
        assert!(v("1.10.0") > v("1.9.9"));
        assert!(v("2") > v("1.99.99.99"));
        assert!(v("1.8.2") < v("1.8.2.1"));
    }

    #[test]
    fn missing_parts_count_as_zero() {
        assert_eq!(v("1.8"), v("1.8.0"));
        assert_eq!(v("1.8").to_string(), "1.8");
    }

    #[test]
    fn malformed_versions_are_rejected() {
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "1..2",
            "v1.2",
            "1.2-beta",
            "1.2.3.4.5",
            " 1",
            "-1",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            Version::parse("1.99999999999"),
            Err(VersionError::NotANumber(_))
        ));
    }

    proptest! {
        #[test]
        fn display_parses_back_to_an_equal_version(parts in proptest::collection::vec(0u32..100_000, 1..=4)) {
            let text = parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let parsed = v(&text);
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert_eq!(v(&parsed.to_string()), parsed);
        }

        #[test]
        fn order_matches_the_order_of_the_zero_padded_parts(
            a in proptest::collection::vec(0u32..5, 1..=4),
            b in proptest::collection::vec(0u32..5, 1..=4),
        ) {
            let pad = |p: &Vec<u32>| { let mut x = p.clone(); x.resize(4, 0); x };
            let text = |p: &Vec<u32>| p.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            prop_assert_eq!(v(&text(&a)).cmp(&v(&text(&b))), pad(&a).cmp(&pad(&b)));
        }
    }
}
