//! English glosses of the device screens. The screens stay in Japanese wherever they are shown
//! (they are what staff and patients see); a page in English shows this gloss beneath them, for
//! a vendor engineer training staff. One gloss per screen line, for every line the profiles and
//! the terminal's dialog can show (the tests check that none is missing).

use super::profiles::{CONSENT_ITEMS, TERMINAL_ERROR};

/// Each Japanese line and its English gloss.
const GLOSSES: &[(&str, &str)] = &[
    (
        "マイナンバーカードを置いてください",
        "Please place your My Number card.",
    ),
    (
        "顔認証を行います。カメラの枠内にお顔を合わせてください（暗証番号でも本人確認できます）",
        "Face authentication: fit your face inside the camera frame (you can also confirm with your PIN).",
    ),
    (
        CONSENT_ITEMS[0],
        "Do you consent to sharing your medical information (medications etc.)?",
    ),
    (
        CONSENT_ITEMS[1],
        "Do you consent to sharing your specific health check-up information?",
    ),
    (
        CONSENT_ITEMS[2],
        "Do you consent to sharing your surgery information?",
    ),
    (
        "受付が完了しました。マイナンバーカードをお取りください。",
        "Check-in complete. Please take your My Number card.",
    ),
    ("しばらくお待ちください", "Please wait a moment."),
    ("エラーが発生しました【901】", "An error occurred [901]"),
    (
        "オンライン資格確認等システムの障害が発生しています",
        "The online qualification confirmation system has a fault.",
    ),
    (
        "マイナンバーカードをお取りになり、受付窓口にお声がけください",
        "Please take your My Number card and speak to the reception desk.",
    ),
    ("エラー【901】", "Error [901]"),
    (
        "オンライン資格確認等システムの障害発生",
        "Fault in the online qualification confirmation system",
    ),
    (
        "受付窓口にお申し出ください",
        "Please go to the reception desk.",
    ),
    (
        "職員はオンライン資格確認等システムの障害発生状況を確認してください。【901：オンライン資格確認等システムの障害発生】",
        "Staff: check the fault status of the online qualification confirmation system. [901: fault in the online qualification confirmation system]",
    ),
    (
        "受付窓口にご連絡ください",
        "Please contact the reception desk.",
    ),
    (
        "職員はオンライン資格確認等システムの障害状況を確認してください【901: オンライン資格確認等システムの障害】",
        "Staff: check the fault status of the online qualification confirmation system [901: fault in the online qualification confirmation system]",
    ),
    ("エラーコード表示", "Error code shown"),
    ("▲ご確認ください▲", "▲ Please check ▲"),
    (
        "職員はオンライン資格確認等システムの障害発生状況を確認してください",
        "Staff: check the fault status of the online qualification confirmation system",
    ),
    ("【901】", "[901]"),
    (
        "マイナンバーカードを取り出し受付窓口までお越しください",
        "Please take out your My Number card and come to the reception desk.",
    ),
    (
        "資格情報が確認できませんでした。保険証等をお持ちの場合は受付窓口にご提示ください。",
        "Your qualification could not be confirmed. If you have a health insurance card, please show it at the reception desk.",
    ),
    (
        "マイナンバーカードの電子証明書の有効期限が切れています。お住まいの市区町村で更新してください。受付窓口にお声がけください。",
        "Your My Number card's electronic certificate has expired. Please renew it at your municipal office, and speak to the reception desk.",
    ),
    (
        TERMINAL_ERROR,
        "An error occurred. The qualification has not been confirmed.",
    ),
];

/// The English gloss of a screen's Japanese text, line by line (`\n`; the consent screen's
/// items are joined by ` / `). A line without a gloss is left out.
pub fn gloss_en(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split(" / ")
                .filter_map(|part| {
                    GLOSSES
                        .iter()
                        .find(|(ja, _)| *ja == part.trim())
                        .map(|(_, en)| *en)
                })
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether every line of `text` has a gloss.
pub fn glossed(text: &str) -> bool {
    text.lines().all(|line| {
        line.split(" / ")
            .all(|part| GLOSSES.iter().any(|(ja, _)| *ja == part.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reception::{QueryOutcome, Reception, ReceptionEvent as E, TerminalState};
    use crate::vendor::Vendor;

    #[test]
    fn every_screen_of_every_vendor_has_a_gloss() {
        for vendor in Vendor::ALL {
            let p = crate::reception::profile(vendor);
            for s in [
                p.initial(),
                p.face_auth(),
                p.consent(),
                p.result(),
                p.after_consent_error(),
                p.error_901(),
                p.no_qualification(),
                p.certificate_expired(),
            ] {
                assert!(glossed(&s.text), "{vendor:?} {}: {}", s.screen, s.text);
            }
        }
        assert!(glossed(TERMINAL_ERROR));
        // And through a desk, the terminal's dialog as a page shows it.
        let mut desk = Reception::new(Vendor::Atlus, TerminalState::PendingRestart);
        for e in [E::CardInserted, E::FaceVerified, E::ConsentCompleted] {
            desk.apply(e, || QueryOutcome::Confirmed).expect("a step");
        }
        let text = desk.terminal_screen().text.expect("a dialog");
        assert_eq!(
            gloss_en(text),
            "An error occurred. The qualification has not been confirmed."
        );
        assert_eq!(gloss_en("【901】\n未知の行"), "[901]");
    }
}
