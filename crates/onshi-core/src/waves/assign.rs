//! Which site is in which wave: stratified, so that each wave before the last covers every
//! institution kind and reader vendor the campaign has, spread over the prefectures, and
//! deterministic (the same sites and campaign id give the same waves on every replica and in
//! the simulator).
//!
//! Sites are grouped into strata by (kind, first reader vendor). Each stratum gives every wave
//! its share of its own sites, rounded up — so a stratum of one site still lands in the first
//! wave — in an order that takes one site per prefecture before a second one from any
//! prefecture (ties broken by a hash of the campaign id and the code, not by code order, so the
//! first wave is not all Hokkaido). Then a wave that lacks a kind or a vendor some later wave
//! has takes one such site from the latest wave that can spare it. The operator's named sites
//! are always in the first wave.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::WavePlan;
use crate::institution::{InstitutionCode, InstitutionKind};
use crate::vendor::Vendor;

/// What the assignment looks at for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteProfile {
    pub code: InstitutionCode,
    pub kind: InstitutionKind,
    /// The makers of the site's card readers (none: a terminal only).
    pub vendors: Vec<Vendor>,
}

/// A deterministic shuffle key: SHA-256 of the campaign id and the code.
fn shuffle_key(campaign: &str, code: InstitutionCode) -> u64 {
    let mut h = Sha256::new();
    h.update(campaign.as_bytes());
    h.update([0]);
    h.update(code.as_string().as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// Each site's wave (0 is the first), in the order of `sites`. A campaign whose plan has `n`
/// waves gets waves `0..n`; the last holds every site the others did not take.
pub fn assign(plan: &WavePlan, campaign: &str, sites: &[SiteProfile]) -> Vec<u16> {
    let last = plan.count() - 1;
    let n = sites.len();
    let mut wave = vec![last; n];
    if n == 0 {
        return wave;
    }
    // Cumulative sizes of the waves before the last, in sites of the whole campaign.
    let cumulative: Vec<usize> = (0..usize::from(last))
        .map(|w| plan.cumulative(w, n))
        .collect();

    // Strata, each in the order that spreads prefectures.
    let mut strata: BTreeMap<(InstitutionKind, Option<Vendor>), Vec<usize>> = BTreeMap::new();
    for (i, s) in sites.iter().enumerate() {
        if plan.named().contains(&s.code) {
            wave[i] = 0;
            continue;
        }
        let first = s.vendors.iter().min().copied();
        strata.entry((s.kind, first)).or_default().push(i);
    }
    for members in strata.values_mut() {
        members.sort_by_key(|&i| (shuffle_key(campaign, sites[i].code), i));
        let mut seen: HashMap<_, u32> = HashMap::new();
        let mut ranked: Vec<(u32, usize)> = members
            .iter()
            .map(|&i| {
                let r = seen.entry(sites[i].code.prefecture()).or_default();
                *r += 1;
                (*r, i)
            })
            .collect();
        // Stable: within one round over the prefectures the shuffled order stays.
        ranked.sort_by_key(|&(round, _)| round);
        *members = ranked.into_iter().map(|(_, i)| i).collect();

        let m = members.len();
        let mut taken = 0usize;
        for (w, &cum) in cumulative.iter().enumerate() {
            // This stratum's share of the waves 0..=w, rounded up.
            let upto = (m * cum).div_ceil(n).min(m);
            for &i in &members[taken.min(upto)..upto] {
                wave[i] = w as u16;
            }
            taken = taken.max(upto);
        }
    }

    // Coverage: every wave before the last holds each kind and vendor some later wave has.
    for w in 0..last {
        for kind in InstitutionKind::ALL {
            cover(&mut wave, w, last, |i| sites[i].kind == kind);
        }
        for vendor in Vendor::ALL {
            cover(&mut wave, w, last, |i| sites[i].vendors.contains(&vendor));
        }
    }
    wave
}

/// If wave `w` has no site matching `fits` while a later wave has, moves one such site (from
/// the latest wave that has one, which is the largest in a usual plan) into `w`.
fn cover(wave: &mut [u16], w: u16, last: u16, fits: impl Fn(usize) -> bool) {
    if (0..wave.len()).any(|i| wave[i] == w && fits(i)) {
        return;
    }
    for from in (w + 1..=last).rev() {
        // Never empty a wave before the last of the kind it is being asked to give.
        let candidates: Vec<usize> = (0..wave.len())
            .filter(|&i| wave[i] == from && fits(i))
            .collect();
        if from < last && candidates.len() < 2 {
            continue;
        }
        if let Some(&i) = candidates.first() {
            wave[i] = w;
            return;
        }
    }
}
