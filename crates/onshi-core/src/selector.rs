//! Which devices a campaign targets: all, or by prefecture, institution kind, reader vendor or a
//! list of 医療機関コード. Dimensions combine with AND; values within one dimension with OR.

use serde::{Deserialize, Serialize};

use crate::institution::{InstitutionCode, InstitutionKind, Prefecture};
use crate::vendor::{DeviceKind, Vendor};

/// A campaign's target selector. The empty selector (every list empty) targets every device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Selector {
    #[serde(default)]
    pub prefectures: Vec<Prefecture>,
    #[serde(default)]
    pub kinds: Vec<InstitutionKind>,
    /// Card readers of these vendors, and the terminals of sites that have one.
    #[serde(default)]
    pub vendors: Vec<Vendor>,
    #[serde(default)]
    pub codes: Vec<InstitutionCode>,
}

/// What the selector looks at for one device.
#[derive(Debug, Clone, Copy)]
pub struct DeviceFacts<'a> {
    pub code: InstitutionCode,
    pub kind: InstitutionKind,
    pub device: DeviceKind,
    pub vendor: Option<Vendor>,
    /// The vendors of the card readers at the device's site.
    pub site_vendors: &'a [Vendor],
}

impl Selector {
    /// The selector that targets everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether the selector targets this device.
    pub fn matches(&self, d: &DeviceFacts<'_>) -> bool {
        let any = |empty: bool, hit: bool| empty || hit;
        any(
            self.prefectures.is_empty(),
            self.prefectures.contains(&d.code.prefecture()),
        ) && any(self.kinds.is_empty(), self.kinds.contains(&d.kind))
            && any(self.codes.is_empty(), self.codes.contains(&d.code))
            && any(
                self.vendors.is_empty(),
                match d.device {
                    DeviceKind::CardReader => d.vendor.is_some_and(|v| self.vendors.contains(&v)),
                    DeviceKind::Terminal => d.site_vendors.iter().any(|v| self.vendors.contains(v)),
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(
        code: &str,
        device: DeviceKind,
        vendor: Option<Vendor>,
        site: &'a [Vendor],
    ) -> DeviceFacts<'a> {
        DeviceFacts {
            code: code.parse().expect("valid code"),
            kind: InstitutionKind::Clinic,
            device,
            vendor,
            site_vendors: site,
        }
    }

    #[test]
    fn the_empty_selector_targets_everything() {
        let d = facts("0110113719", DeviceKind::Terminal, None, &[]);
        assert!(Selector::all().matches(&d));
    }

    #[test]
    fn dimensions_combine_with_and() {
        let hokkaido = facts("0110113719", DeviceKind::Terminal, None, &[Vendor::Canon]);
        let s = Selector {
            prefectures: vec![Prefecture::from_number(1).expect("1")],
            kinds: vec![InstitutionKind::Pharmacy],
            ..Selector::default()
        };
        assert!(!s.matches(&hokkaido), "a clinic is not a pharmacy");
        let s = Selector {
            prefectures: vec![Prefecture::from_number(1).expect("1")],
            kinds: vec![InstitutionKind::Clinic, InstitutionKind::Pharmacy],
            ..Selector::default()
        };
        assert!(s.matches(&hokkaido));
    }

    #[test]
    fn a_vendor_selects_its_readers_and_the_terminals_of_their_sites() {
        let s = Selector {
            vendors: vec![Vendor::Atlus],
            ..Selector::default()
        };
        let site = [Vendor::Atlus, Vendor::Canon];
        assert!(s.matches(&facts("0110113719", DeviceKind::Terminal, None, &site)));
        assert!(s.matches(&facts(
            "0110113719",
            DeviceKind::CardReader,
            Some(Vendor::Atlus),
            &site
        )));
        assert!(!s.matches(&facts(
            "0110113719",
            DeviceKind::CardReader,
            Some(Vendor::Canon),
            &site
        )));
        assert!(!s.matches(&facts(
            "0110113719",
            DeviceKind::Terminal,
            None,
            &[Vendor::Canon]
        )));
    }

    #[test]
    fn selectors_reject_unknown_fields_and_bad_values() {
        assert!(serde_json::from_str::<Selector>(r#"{"prefecture": [13]}"#).is_err());
        assert!(serde_json::from_str::<Selector>(r#"{"prefectures": [48]}"#).is_err());
        assert!(serde_json::from_str::<Selector>(r#"{"codes": ["1311111111"]}"#).is_err());
        let s: Selector =
            serde_json::from_str(r#"{"vendors": ["usen-almex"], "kinds": ["dental"]}"#)
                .expect("valid");
        assert_eq!(s.vendors, vec![Vendor::UsenAlmex]);
    }
}
