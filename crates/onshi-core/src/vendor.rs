//! The devices at a site: the 資格確認端末 and the 顔認証付きカードリーダー, and the five vendors
//! that make the readers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of device an agent speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// 資格確認端末 — the qualification confirmation terminal (a Windows PC). Its update takes
    /// effect only after it restarts.
    Terminal,
    /// 顔認証付きカードリーダー — a face-authentication card reader attached to the terminal. It
    /// is never restarted by staff: its installed update is applied by its terminal's restart.
    CardReader,
}

/// Why a string is not a device kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device kind {0:?}: expected terminal or card_reader")]
pub struct UnknownDeviceKind(pub String);

impl DeviceKind {
    /// The machine name used in files and APIs.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Terminal => "terminal",
            Self::CardReader => "card_reader",
        }
    }

    /// The Japanese name shown on pages.
    pub fn name_ja(self) -> &'static str {
        match self {
            Self::Terminal => "資格確認端末",
            Self::CardReader => "顔認証付きカードリーダー",
        }
    }

    /// The English name shown on pages.
    pub fn name_en(self) -> &'static str {
        match self {
            Self::Terminal => "qualification confirmation terminal",
            Self::CardReader => "face-authentication card reader",
        }
    }

    /// Whether the device itself is restarted to apply an installed update (the notice:
    /// 更新アプリケーションのインストール後、資格確認端末の再起動を実施): the terminal. A card
    /// reader is never restarted by staff, yet its installed update is not applied either until
    /// its terminal restarts (`DeploymentState::awaits_terminal_restart`).
    pub fn needs_restart_to_apply(self) -> bool {
        matches!(self, Self::Terminal)
    }
}

impl FromStr for DeviceKind {
    type Err = UnknownDeviceKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "terminal" => Ok(Self::Terminal),
            "card_reader" | "card-reader" | "reader" => Ok(Self::CardReader),
            _ => Err(UnknownDeviceKind(s.to_owned())),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A maker of face-authentication card readers named in the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Vendor {
    /// パナソニック
    Panasonic,
    /// キヤノン
    Canon,
    /// USEN-ALMEX
    UsenAlmex,
    /// 富士通Japan
    FujitsuJapan,
    /// アトラス情報サービス
    Atlus,
}

/// Why a string is not a vendor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown vendor {0:?}: expected one of panasonic, canon, usen-almex, fujitsu-japan, atlus")]
pub struct UnknownVendor(pub String);

impl Vendor {
    /// The five, in the order the notice lists them.
    pub const ALL: [Self; 5] = [
        Self::Panasonic,
        Self::Canon,
        Self::UsenAlmex,
        Self::FujitsuJapan,
        Self::Atlus,
    ];

    /// The CLI and API name: `panasonic`, `canon`, `usen-almex`, `fujitsu-japan`, `atlus`.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Panasonic => "panasonic",
            Self::Canon => "canon",
            Self::UsenAlmex => "usen-almex",
            Self::FujitsuJapan => "fujitsu-japan",
            Self::Atlus => "atlus",
        }
    }

    /// The name as the notice writes it.
    pub fn name_ja(self) -> &'static str {
        match self {
            Self::Panasonic => "パナソニック",
            Self::Canon => "キヤノン",
            Self::UsenAlmex => "USEN-ALMEX",
            Self::FujitsuJapan => "富士通Japan",
            Self::Atlus => "アトラス情報サービス",
        }
    }

    /// The English name.
    pub fn name_en(self) -> &'static str {
        match self {
            Self::Panasonic => "Panasonic",
            Self::Canon => "Canon",
            Self::UsenAlmex => "USEN-ALMEX",
            Self::FujitsuJapan => "Fujitsu Japan",
            Self::Atlus => "Atlus Information Service",
        }
    }
}

impl FromStr for Vendor {
    type Err = UnknownVendor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.slug() == s)
            .ok_or_else(|| UnknownVendor(s.to_owned()))
    }
}

impl TryFrom<String> for Vendor {
    type Error = UnknownVendor;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Vendor> for &'static str {
    fn from(v: Vendor) -> Self {
        v.slug()
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendor_round_trips_through_its_slug() {
        for v in Vendor::ALL {
            assert_eq!(v.slug().parse(), Ok(v));
            assert_eq!(v.to_string(), v.slug());
        }
        let slugs: Vec<_> = Vendor::ALL.iter().map(|v| v.slug()).collect();
        assert_eq!(
            slugs,
            ["panasonic", "canon", "usen-almex", "fujitsu-japan", "atlus"]
        );
    }

    #[test]
    fn vendors_carry_the_names_the_notice_uses() {
        assert_eq!(Vendor::Canon.name_ja(), "キヤノン");
        assert_eq!(Vendor::FujitsuJapan.name_ja(), "富士通Japan");
        assert_eq!(Vendor::Atlus.name_en(), "Atlus Information Service");
    }

    #[test]
    fn unknown_vendor_names_the_five_known_ones() {
        let err = "sony".parse::<Vendor>().expect_err("unknown");
        assert!(err.to_string().contains("usen-almex"));
        assert!("Canon".parse::<Vendor>().is_err(), "slugs are lower case");
    }

    #[test]
    fn only_the_terminal_needs_a_restart() {
        assert!(DeviceKind::Terminal.needs_restart_to_apply());
        // The reader is applied by its terminal's restart, not by a restart of its own.
        assert!(!DeviceKind::CardReader.needs_restart_to_apply());
        assert_eq!("card_reader".parse(), Ok(DeviceKind::CardReader));
        assert!("printer".parse::<DeviceKind>().is_err());
    }
}
