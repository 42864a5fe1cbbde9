//! Each vendor's card reader, screen by screen. The behaviours at ① and the 901 texts are the
//! notice's (別添 事務連絡, ①・②); Panasonic's and Canon's 901 screens appear in the notice only as
//! pictures, so their texts here are written in the same spirit and marked as such.

use super::ReaderScreen;
use crate::vendor::Vendor;

/// The consent items a patient goes through (同意選択), in order.
pub const CONSENT_ITEMS: [&str; 3] = [
    "診療情報（薬剤情報等）の提供に同意しますか",
    "特定健診等の情報の提供に同意しますか",
    "手術情報の提供に同意しますか",
];

/// The terminal's first error dialog, at the end of the consent selection (①). The notice shows
/// the dialog as a picture; this text says what it means.
pub const TERMINAL_ERROR_1: &str = "エラーが発生しました。資格確認を完了できませんでした。（更新アプリケーションのインストール後、資格確認端末が再起動されていません）";

/// The second dialog, opened by OK on the first (②).
pub const TERMINAL_ERROR_2: &str =
    "エラーが発生しました。OKを押すと顔認証付きカードリーダーの処理を中断します。";

/// How one vendor's reader shows the check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorProfile {
    pub vendor: Vendor,
    /// The screen at ① and its text.
    at_consent_error: (&'static str, bool, &'static str),
    /// The 901 screen's lines.
    error_901_lines: &'static [&'static str],
    /// Whether the 901 text is quoted from the notice (false: written in its spirit).
    pub error_901_quoted: bool,
}

const LAST_CONSENT: &str = CONSENT_ITEMS[CONSENT_ITEMS.len() - 1];

const PROFILES: [VendorProfile; 5] = [
    VendorProfile {
        vendor: Vendor::Panasonic,
        // 完了画面が表示されるが、カードを抜き取っても画面が切り替わらない
        at_consent_error: (
            "completion_frozen",
            true,
            "受付が完了しました。マイナンバーカードをお取りください。",
        ),
        error_901_lines: &[
            "エラーが発生しました【901】",
            "オンライン資格確認等システムの障害が発生しています",
            "マイナンバーカードをお取りになり、受付窓口にお声がけください",
        ],
        error_901_quoted: false,
    },
    VendorProfile {
        vendor: Vendor::Canon,
        // 「しばらくお待ちください」と表示され、画面が切り替わらない
        at_consent_error: ("please_wait", true, "しばらくお待ちください"),
        error_901_lines: &[
            "エラー【901】",
            "オンライン資格確認等システムの障害発生",
            "受付窓口にお申し出ください",
        ],
        error_901_quoted: false,
    },
    VendorProfile {
        vendor: Vendor::UsenAlmex,
        // 最後に表示された同意画面上に、読み込み中の円が表示され、画面が切り替わらない
        at_consent_error: ("consent_loading", true, LAST_CONSENT),
        error_901_lines: &[
            "職員はオンライン資格確認等システムの障害発生状況を確認してください。【901：オンライン資格確認等システムの障害発生】",
        ],
        error_901_quoted: true,
    },
    VendorProfile {
        vendor: Vendor::FujitsuJapan,
        at_consent_error: ("consent_loading", true, LAST_CONSENT),
        error_901_lines: &[
            "受付窓口にご連絡ください",
            "職員はオンライン資格確認等システムの障害状況を確認してください【901: オンライン資格確認等システムの障害】",
        ],
        error_901_quoted: true,
    },
    VendorProfile {
        vendor: Vendor::Atlus,
        // 最初の画面に戻る
        at_consent_error: ("initial", false, INITIAL_TEXT),
        error_901_lines: &[
            "エラーコード表示",
            "▲ご確認ください▲",
            "職員はオンライン資格確認等システムの障害発生状況を確認してください【901】",
            "マイナンバーカードを取り出し受付窓口までお越しください",
        ],
        error_901_quoted: true,
    },
];

const INITIAL_TEXT: &str = "マイナンバーカードを置いてください";

/// The profile of one vendor's reader.
pub fn profile(vendor: Vendor) -> &'static VendorProfile {
    PROFILES
        .iter()
        .find(|p| p.vendor == vendor)
        .unwrap_or(&PROFILES[0])
}

fn screen(id: &'static str, stuck: bool, text: impl Into<String>) -> ReaderScreen {
    ReaderScreen {
        screen: id,
        stuck,
        code: None,
        text: text.into(),
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
        screen(
            "result",
            false,
            "受付が完了しました。マイナンバーカードをお取りください。",
        )
    }

    /// ①: what this vendor's reader shows when the terminal failed at the end of consent.
    pub fn after_consent_error(&self) -> ReaderScreen {
        let (id, stuck, text) = self.at_consent_error;
        let text = if id == "consent_loading" {
            format!("{text}（読み込み中の円が表示されたまま）")
        } else {
            text.to_owned()
        };
        screen(id, stuck, text)
    }

    /// ②: error 901, after OK on the terminal's second dialog.
    pub fn error_901(&self) -> ReaderScreen {
        ReaderScreen {
            screen: "error_901",
            stuck: true,
            code: Some("901"),
            text: self.error_901_lines.join("\n"),
        }
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
