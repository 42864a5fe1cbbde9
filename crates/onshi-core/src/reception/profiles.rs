//! Each vendor's card reader, screen by screen, each text with its [`Source`]. The behaviours at
//! ① and the USEN-ALMEX, Fujitsu Japan and Atlus 901 texts are the notice's (別添 事務連絡, ①・②),
//! quoted as written. Everything else — Panasonic's and Canon's 901 screens and the terminal's
//! dialogs (pictures in the notice), and the wording of screens the notice describes only in words
//! or not at all — is assumed, and marked so wherever it is shown.

use super::{ReaderScreen, Source};
use crate::vendor::Vendor;

/// The consent items a patient goes through (同意選択), in order. Assumed wording.
pub const CONSENT_ITEMS: [&str; 3] = [
    "診療情報（薬剤情報等）の提供に同意しますか",
    "特定健診等の情報の提供に同意しますか",
    "手術情報の提供に同意しますか",
];

/// The text of both of the terminal's error dialogs (① and the second one that OK opens). The
/// notice shows them only as pictures and names no cause, so this says only what the notice says
/// of them: an error, and the qualification not confirmed. Its source is [`TERMINAL_DIALOG_SOURCE`].
pub const TERMINAL_ERROR: &str = "エラーが発生しました。資格確認は完了していません。";

/// Where the terminal dialogs' wording comes from: the notice has pictures only.
pub const TERMINAL_DIALOG_SOURCE: Source = Source::Assumed;

/// A screen's lines and where their wording comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Text {
    lines: &'static [&'static str],
    source: Source,
}

const fn quoted(lines: &'static [&'static str]) -> Text {
    Text {
        lines,
        source: Source::Quoted,
    }
}

const fn assumed(lines: &'static [&'static str]) -> Text {
    Text {
        lines,
        source: Source::Assumed,
    }
}

/// What a vendor's reader does at ①, when the terminal fails at the end of the consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AtConsentError {
    /// The screen id (DESIGN.md §4).
    screen: &'static str,
    stuck: bool,
    text: Text,
    /// The notice's own words for the behaviour (quoted, even where the wording is not).
    behaviour: &'static str,
}

/// How one vendor's reader shows the check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorProfile {
    pub vendor: Vendor,
    at_consent_error: AtConsentError,
    /// ②: the 901 screen, exactly as the notice shows it where it quotes it. The code is part of
    /// the text; nothing adds it a second time.
    error_901: Text,
}

const LAST_CONSENT: &[&str] = &[CONSENT_ITEMS[CONSENT_ITEMS.len() - 1]];

/// Both spin over the last consent screen (the notice's words, the same for the two vendors).
const CONSENT_LOADING: AtConsentError = AtConsentError {
    screen: "consent_loading",
    stuck: true,
    text: assumed(LAST_CONSENT),
    behaviour: "最後に表示された同意画面上に、読み込み中の円が表示され、画面が切り替わらない",
};

const PROFILES: [VendorProfile; 5] = [
    VendorProfile {
        vendor: Vendor::Panasonic,
        at_consent_error: AtConsentError {
            screen: "completion_frozen",
            stuck: true,
            text: assumed(&[COMPLETION_TEXT]),
            behaviour: "完了画面が表示されるが、カードを抜き取っても画面が切り替わらない",
        },
        // A picture in the notice.
        error_901: assumed(&[
            "エラーが発生しました【901】",
            "オンライン資格確認等システムの障害が発生しています",
            "マイナンバーカードをお取りになり、受付窓口にお声がけください",
        ]),
    },
    VendorProfile {
        vendor: Vendor::Canon,
        at_consent_error: AtConsentError {
            screen: "please_wait",
            stuck: true,
            text: quoted(&["しばらくお待ちください"]),
            behaviour: "「しばらくお待ちください」と表示され、画面が切り替わらない",
        },
        // A picture in the notice.
        error_901: assumed(&[
            "エラー【901】",
            "オンライン資格確認等システムの障害発生",
            "受付窓口にお申し出ください",
        ]),
    },
    VendorProfile {
        vendor: Vendor::UsenAlmex,
        at_consent_error: CONSENT_LOADING,
        error_901: quoted(&[
            "職員はオンライン資格確認等システムの障害発生状況を確認してください。【901：オンライン資格確認等システムの障害発生】",
        ]),
    },
    VendorProfile {
        vendor: Vendor::FujitsuJapan,
        at_consent_error: CONSENT_LOADING,
        error_901: quoted(&[
            "受付窓口にご連絡ください",
            "職員はオンライン資格確認等システムの障害状況を確認してください【901: オンライン資格確認等システムの障害】",
        ]),
    },
    VendorProfile {
        vendor: Vendor::Atlus,
        at_consent_error: AtConsentError {
            screen: "initial",
            stuck: false,
            text: assumed(&[INITIAL_TEXT]),
            behaviour: "最初の画面に戻る",
        },
        error_901: quoted(&[
            "エラーコード表示",
            "▲ご確認ください▲",
            "職員はオンライン資格確認等システムの障害発生状況を確認してください",
            "【901】",
            "マイナンバーカードを取り出し受付窓口までお越しください",
        ]),
    },
];

const COMPLETION_TEXT: &str = "受付が完了しました。マイナンバーカードをお取りください。";

const INITIAL_TEXT: &str = "マイナンバーカードを置いてください";

/// The profile of one vendor's reader.
pub fn profile(vendor: Vendor) -> &'static VendorProfile {
    PROFILES
        .iter()
        .find(|p| p.vendor == vendor)
        .unwrap_or(&PROFILES[0])
}

/// A screen the notice does not show at all: assumed wording, no code, no behaviour.
fn screen(id: &'static str, stuck: bool, text: impl Into<String>) -> ReaderScreen {
    ReaderScreen {
        screen: id,
        stuck,
        code: None,
        text: text.into(),
        source: Source::Assumed,
        behaviour: None,
    }
}

impl VendorProfile {
    /// The first screen, waiting for a card.
    pub fn initial(&self) -> ReaderScreen {
        screen("initial", false, INITIAL_TEXT)
    }

    /// Face authentication (or PIN).
    pub fn face_auth(&self) -> ReaderScreen {
        screen(
            "face_auth",
            false,
            "顔認証を行います。カメラの枠内にお顔を合わせてください（暗証番号でも本人確認できます）",
        )
    }

    /// The consent selection.
    pub fn consent(&self) -> ReaderScreen {
        screen("consent", false, CONSENT_ITEMS.join(" / "))
    }

    /// The screen after a confirmed check-in.
    pub fn result(&self) -> ReaderScreen {
        screen("result", false, COMPLETION_TEXT)
    }

    /// ①: what this vendor's reader shows when the terminal failed at the end of consent.
    pub fn after_consent_error(&self) -> ReaderScreen {
        let at = self.at_consent_error;
        ReaderScreen {
            screen: at.screen,
            stuck: at.stuck,
            code: None,
            text: at.text.lines.join("\n"),
            source: at.text.source,
            behaviour: Some(at.behaviour),
        }
    }

    /// ②: error 901, after OK on the terminal's second dialog.
    pub fn error_901(&self) -> ReaderScreen {
        ReaderScreen {
            screen: "error_901",
            stuck: true,
            code: Some("901"),
            text: self.error_901.lines.join("\n"),
            source: self.error_901.source,
            behaviour: None,
        }
    }

    /// Whether the notice quotes this vendor's 901 screen or shows it only as a picture.
    pub fn error_901_source(&self) -> Source {
        self.error_901.source
    }

    /// The card's holder has no qualification on record.
    pub fn no_qualification(&self) -> ReaderScreen {
        screen(
            "no_qualification",
            false,
            "資格情報が確認できませんでした。保険証等をお持ちの場合は受付窓口にご提示ください。",
        )
    }

    /// The card's electronic certificate has expired.
    pub fn certificate_expired(&self) -> ReaderScreen {
        screen(
            "certificate_expired",
            false,
            "マイナンバーカードの電子証明書の有効期限が切れています。お住まいの市区町村で更新してください。受付窓口にお声がけください。",
        )
    }
}
