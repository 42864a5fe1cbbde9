//! The synthetic fleet that `onshi fixture` and `onshi demo` build: institution kinds in their
//! national proportions, prefectures weighted by population, valid but synthetic 医療機関コード,
//! obviously fake names (`テスト診療所 000123`, `@example.invalid`) and deterministic package
//! bytes. One place, so the benchmark fixture and the demo describe the same kind of country.

use std::collections::HashMap;
use std::sync::OnceLock;

use onshi_core::institution::{InstitutionCode, InstitutionKind, Prefecture, ScoreTable};

/// How many sites of each kind there are in every 200: hospitals 3.5 %, clinics 39 %, dental
/// clinics 30.5 %, pharmacies 27 % (roughly the national counts: ~8,000 hospitals, ~90,000
/// clinics, ~67,000 dental clinics, ~62,000 pharmacies).
pub const KIND_MIX: [(InstitutionKind, u32); 4] = [
    (InstitutionKind::Hospital, 7),
    (InstitutionKind::Clinic, 78),
    (InstitutionKind::Dental, 61),
    (InstitutionKind::Pharmacy, 54),
];

const KIND_MIX_TOTAL: u32 = 200;

/// The kind of site number `i`: the [`KIND_MIX`] proportions, spread evenly over every run of
/// 200 consecutive sites (so 20 sites already hold a hospital and every other kind).
pub fn kind_at(i: u32) -> InstitutionKind {
    static PATTERN: OnceLock<Vec<InstitutionKind>> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        // Each slot goes to the kind furthest behind its share so far; no kind ever passes its
        // quota, so after 200 slots every kind has exactly its count.
        let mut given = [0u32; 4];
        (0..KIND_MIX_TOTAL)
            .map(|slot| {
                let behind = |k: usize| {
                    i64::from((slot + 1) * KIND_MIX[k].1) - i64::from(KIND_MIX_TOTAL * given[k])
                };
                let k = (0..KIND_MIX.len())
                    .max_by_key(|&k| (behind(k), std::cmp::Reverse(k)))
                    .unwrap_or(1);
                given[k] += 1;
                KIND_MIX[k].0
            })
            .collect()
    });
    pattern
        .get(usize::try_from(i % KIND_MIX_TOTAL).unwrap_or(0))
        .copied()
        .unwrap_or(InstitutionKind::Clinic)
}

/// Population by prefecture in units of 10,000 (2020 census, rounded), in JIS order: the
/// weight with which the demo places its sites.
pub const PREFECTURE_POPULATION: [u32; 47] = [
    522, 124, 121, 230, 96, 107, 183, 287, 193, 194, 734, 628, 1405, 924, 220, 103, 113, 77, 81,
    205, 198, 363, 754, 177, 141, 258, 884, 547, 132, 92, 55, 67, 189, 280, 134, 72, 95, 133, 69,
    514, 81, 131, 174, 112, 107, 159, 147,
];

/// The prefecture whose share of the population covers `u` (uniform in [0, 1)).
pub fn prefecture_by_population(u: f64) -> Prefecture {
    let total: u32 = PREFECTURE_POPULATION.iter().sum();
    let mut target = u.clamp(0.0, 1.0) * f64::from(total);
    for (n, weight) in (1u8..).zip(PREFECTURE_POPULATION) {
        target -= f64::from(weight);
        if target < 0.0 {
            return Prefecture::from_number(n).unwrap_or_else(|| unreachable!("1–47"));
        }
    }
    Prefecture::from_number(47).unwrap_or_else(|| unreachable!("Okinawa is 47"))
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
    fn every_200_sites_hold_the_national_mix_of_kinds() {
        for start in [0, 200, 4000] {
            for (kind, n) in KIND_MIX {
                let got = (start..start + 200).filter(|&i| kind_at(i) == kind).count();
                assert_eq!(got, usize::try_from(n).expect("small"), "{kind}");
            }
        }
        // Spread out: the first 20 sites already hold a hospital and each other kind.
        let first: Vec<_> = (0..20).map(kind_at).collect();
        for (kind, _) in KIND_MIX {
            assert!(first.contains(&kind), "{kind} missing from {first:?}");
        }
    }

    #[test]
    fn tokyo_is_the_most_likely_prefecture_and_every_one_is_reachable() {
        let mut seen = [0u32; 47];
        for k in 0..10_000 {
            let p = prefecture_by_population((f64::from(k) + 0.5) / 10_000.0);
            seen[usize::from(p.number() - 1)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0));
        let max = seen.iter().copied().max().expect("47");
        assert_eq!(seen[12], max, "Tokyo (13) has the most sites");
    }

    #[test]
    fn codes_are_valid_distinct_and_match_the_kind() {
        let mut codes = Codes::default();
        let tokyo = Prefecture::from_number(13).expect("Tokyo");
        let mut all = std::collections::HashSet::new();
        for i in 0..25_000 {
            let kind = kind_at(i);
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
