//! What the synthetic fleet of `onshi demo`, its load mode and `onshi fixture` is made of. The
//! sites themselves — kinds, prefectures, readers and vendors, habits — come from the one model
//! of the country, the simulator's ([`model`], drawn with `onshi_sim::fleet::sites`). This
//! module adds only their synthetic identity: valid but synthetic 医療機関コード, obviously fake
//! names (`テスト診療所 000123`, `@example.invalid`), and deterministic package bytes.

use std::collections::HashMap;

use anyhow::Context as _;
use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture, ScoreTable};
use onshi_sim::Scenario;

/// The simulator's preset whose sites the demo, the load mode and the fixture draw.
const MODEL: &str = "national-2026-01";

/// The model of the country's sites: the simulator's national preset
/// (`crates/onshi-sim/presets/national-2026-01.toml`).
pub fn model() -> anyhow::Result<Scenario> {
    Scenario::preset(MODEL).with_context(|| format!("the simulator's preset {MODEL}"))
}

/// The 点数表 a site of this kind bills under.
pub fn score_table(kind: InstitutionKind) -> ScoreTable {
    match kind {
        InstitutionKind::Hospital | InstitutionKind::Clinic => ScoreTable::Medical,
        InstitutionKind::Dental => ScoreTable::Dental,
        InstitutionKind::Pharmacy => ScoreTable::Pharmacy,
    }
}

/// Hands out distinct valid 医療機関コード: per prefecture and 点数表, numbers 0000–9999 in
/// district 00, then district 01, and so on.
#[derive(Debug, Default)]
pub struct Codes {
    next: HashMap<(Prefecture, ScoreTable), u32>,
}

impl Codes {
    /// The next unused code for a site of `kind` in `prefecture`; `None` once a prefecture's
    /// million codes of that 点数表 are used up.
    pub fn next(
        &mut self,
        prefecture: Prefecture,
        kind: InstitutionKind,
    ) -> Option<InstitutionCode> {
        let table = score_table(kind);
        let n = self.next.entry((prefecture, table)).or_insert(0);
        let code = InstitutionCode::from_parts(
            prefecture,
            table,
            u8::try_from(*n / 10_000).ok()?,
            u16::try_from(*n % 10_000).ok()?,
        )?;
        *n += 1;
        Some(code)
    }
}

/// The synthetic name of site number `i`: `テスト病院 000007`.
pub fn name(kind: InstitutionKind, i: u32) -> String {
    let label = match kind {
        InstitutionKind::Hospital => "テスト病院",
        InstitutionKind::Clinic => "テスト診療所",
        InstitutionKind::Dental => "テスト歯科",
        InstitutionKind::Pharmacy => "テスト薬局",
    };
    format!("{label} {i:06}")
}

/// The synthetic e-mail address of site number `i` (a reserved domain: nothing is ever sent).
pub fn email(i: u32) -> String {
    format!("site{i:06}@example.invalid")
}

/// `len` deterministic bytes that do not compress to nothing (an xorshift stream); a different
/// `seed` gives a different package.
pub fn package(len: usize, seed: u64) -> Vec<u8> {
    let mut x: u64 = 0x6f6e_7368_6900_2026 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if x == 0 {
        x = 1;
    }
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_valid_distinct_and_match_the_kind() {
        let mut codes = Codes::default();
        let tokyo = Prefecture::from_number(13).expect("Tokyo");
        let mut all = std::collections::HashSet::new();
        for i in 0..25_000 {
            let kind = InstitutionKind::ALL[i % 4];
            let code = codes.next(tokyo, kind).expect("room");
            assert!(kind.matches(code.score_table()));
            assert_eq!(InstitutionCode::parse(&code.to_string()), Ok(code));
            assert!(all.insert(code), "{code} twice");
        }
    }

    #[test]
    fn packages_are_deterministic_and_differ_by_seed() {
        assert_eq!(package(1000, 3), package(1000, 3));
        assert_ne!(package(1000, 3), package(1000, 4));
        assert_eq!(package(1001, 0).len(), 1001);
    }
}
